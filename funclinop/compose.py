"""Composite operators: Chain and Add (Concat and Stack live in concat.py)."""

from .dims import ELLIPSIS, named, sorted_sizes, unify
from .errors import ShapeError
from .linop import Linop, SplitKind, derived, _fmt, sequential_devices

DIAG, IN, OUT, SUM, ABSENT = SplitKind.DIAG, SplitKind.IN, SplitKind.OUT, SplitKind.SUM, SplitKind.ABSENT

__all__ = ["Chain", "Add"]


def through(shape, ishape, oshape):
    """The output dims of an operator ``ishape -> oshape`` given input dims ``shape``.

    Dims that ``shape`` has beyond ``ishape``'s named dims ride through the
    operator's leading ``"..."``.
    """
    if ishape[:1] != (ELLIPSIS,) or oshape[:1] != (ELLIPSIS,):
        return oshape
    extra = named(shape)[: max(0, len(named(shape)) - len(named(ishape)))]
    lead = shape[:1] if shape[:1] == (ELLIPSIS,) else ()
    return lead + extra + named(oshape)


def _check_linops(name, linops):
    if not linops:
        raise ValueError(f"{name}: needs at least one operator")
    for op in linops:
        if not isinstance(op, Linop):
            raise TypeError(f"{name}: expected Linops, got {type(op).__name__}")


def _linops_arg(name, ops, linops):
    """The checked operators, given positionally (``Chain(A, B)``) or as the
    ``linops`` field (``Chain(linops=(A, B))``, as ``dataclasses.replace`` does)."""
    if linops is not None:
        if ops:
            raise TypeError(f"{name}: give the operators positionally or as linops=, not both")
        if not isinstance(linops, (tuple, list)):
            raise TypeError(f"{name}: linops must be a tuple of Linops, got {type(linops).__name__}")
        ops = linops
    _check_linops(name, ops)
    return tuple(ops)


def merged_sizes(name, linops):
    """``{dim: size}`` over all ``linops``; a dim with two sizes is an error."""
    sizes = {}
    for op in linops:
        for d, n in op.dim_sizes().items():
            if sizes.setdefault(d, n) != n:
                raise ShapeError(f"{name}: dim {d!r} has size {sizes[d]} in one operator and {n} in {op._name()}")
    return sorted_sizes(sizes)


def chain_kind(linops, dim, present):
    """The split kind of a composition (in execution order) along ``dim``.

    Slicing ``dim`` in every factor rebuilds the composition only when the dim
    is carried through elementwise (diag), consumed once (in), produced once
    (out), or produced and then consumed once (sum).
    """
    events = []
    for op in linops:
        kind = op.split_kind(dim)
        if kind is None:
            return None
        if kind == DIAG and not present:
            return None
        if kind == IN:
            if not present:
                return None
            present = False
        elif kind == OUT:
            if present:
                return None
            present = True
        elif kind == SUM and present:
            return None  # an internal dim of one factor shares the name of a dim carried past it
        if kind in (IN, OUT, SUM):
            events.append(kind)
    if not events:
        return DIAG if present else ABSENT
    return {(IN,): IN, (OUT,): OUT, (OUT, IN): SUM, (SUM,): SUM}.get(tuple(events))


def common_kind(linops, dim, shared):
    """The split kind of a sum (or block row) of ``linops`` along ``dim``."""
    kinds = set()
    for op in linops:
        kind = op.split_kind(dim)
        if kind == ABSENT and shared:
            kind = DIAG  # carried through '...'
        kinds.add(kind)
    return kinds.pop() if len(kinds) == 1 else None


class Chain(Linop):
    """Composition in execution order: ``Chain(A, B)(x) == B(A(x))`` (``B @ A``).

    Adjacent shapes must match by name (a leading ``"..."`` absorbs extra
    dims) and a dim has one size throughout; both are checked here. The
    operators may also be given as ``linops=(A, B)``, the field that
    ``dataclasses.replace`` sets (as for Add, Concat and Stack).

    >>> import torch, funclinop as fl
    >>> A = fl.Chain(fl.Diagonal(torch.tensor([1.0, 2.0]), ("N",)), fl.Scalar(3.0, ("N",)))
    >>> A(torch.ones(2))
    tensor([3., 6.])
    """

    linops: tuple[Linop, ...]
    ishape: tuple = derived()
    oshape: tuple = derived()
    _sizes: tuple = derived()

    def __init__(self, *ops, linops=None):
        flat = []
        for op in _linops_arg("Chain", ops, linops):
            flat.extend(op.linops if isinstance(op, Chain) else (op,))
        self.linops = tuple(flat)
        self.__post_init__()

    def _precompute(self):
        ops = self.linops
        shape = ops[0].oshape
        for a, b in zip(ops, ops[1:]):
            if unify(shape, b.ishape) is None:
                raise ShapeError(
                    f"Chain: output {_fmt(shape)} of {a._name()} does not match "
                    f"input {_fmt(b.ishape)} of {b._name()}"
                )
            shape = through(shape, b.ishape, b.oshape)
            if len(set(named(shape))) != len(named(shape)):
                raise ShapeError(
                    f"Chain: {b._name()} adds a dim that its input already carries through '...', "
                    f"giving {_fmt(shape)}"
                )
        ishape = shape
        for op in reversed(ops):  # the most specific input: dims carried by '...'
            ishape = through(ishape, op.oshape, op.ishape)
        ishape = unify(ishape, ops[0].ishape) or ops[0].ishape
        return dict(ishape=ishape, oshape=shape, _sizes=merged_sizes("Chain", ops))

    def apply(self, x):
        for op in self.linops:
            x = op.apply(x)
        return x

    def apply_adjoint(self, y):
        for op in reversed(self.linops):
            y = op.apply_adjoint(y)
        return y

    def adjoint(self):
        return self._derive(linops=tuple(op.adjoint() for op in reversed(self.linops)),
                            ishape=self.oshape, oshape=self.ishape)

    def normal(self):
        from .ops.identity import Identity

        ops = list(self.linops)
        middle = ops.pop().normal()
        # An orthonormal factor (FFT) has an Identity normal: fold through it.
        while ops and isinstance(middle, Identity) and middle.ishape == middle.oshape:
            middle = ops.pop().normal()
        if not ops:
            return middle
        return Chain(*ops, middle, *(op.adjoint() for op in reversed(ops)))

    def size(self, dim):
        return dict(self._sizes).get(dim)

    def tile(self, slices):
        return Chain(*(op.tile(slices) for op in self.linops))

    def split_kind(self, dim):
        return chain_kind(self.linops, dim, dim in named(self.ishape))

    def split_refusal(self, dim):
        return ("consumes and re-creates it (or carries it past a factor that uses the name "
                "internally), so tiles along it do not reassemble into the chain")

    def _device_flow(self, parts):
        return sequential_devices(parts)  # each factor takes the previous one's output


class Add(Linop):
    """Sum of operators with matching shapes: ``Add(A, B)(x) == A(x) + B(x)``.

    >>> import torch, funclinop as fl
    >>> A = fl.Scalar(2.0, ("N",)) + fl.Identity(("N",))
    >>> A(torch.ones(2))
    tensor([3., 3.])
    """

    linops: tuple[Linop, ...]
    ishape: tuple = derived()
    oshape: tuple = derived()
    _sizes: tuple = derived()

    def __init__(self, *ops, linops=None):
        flat = []
        for op in _linops_arg("Add", ops, linops):
            flat.extend(op.linops if isinstance(op, Add) else (op,))
        self.linops = tuple(flat)
        self.__post_init__()

    def _precompute(self):
        ishape, oshape = self.linops[0].ishape, self.linops[0].oshape
        for op in self.linops[1:]:
            i, o = unify(ishape, op.ishape), unify(oshape, op.oshape)
            if i is None or o is None:
                raise ShapeError(
                    f"Add: {op._name()} does not match the other terms "
                    f"({_fmt(ishape)} -> {_fmt(oshape)})"
                )
            ishape, oshape = i, o
        return dict(ishape=ishape, oshape=oshape, _sizes=merged_sizes("Add", self.linops))

    def apply(self, x):
        ops = self.linops
        y = ops[0].apply(x)
        for op in ops[1:]:
            y = y + op.apply(x)
        return y

    def apply_adjoint(self, y):
        ops = self.linops
        x = ops[0].apply_adjoint(y)
        for op in ops[1:]:
            x = x + op.apply_adjoint(y)
        return x

    def adjoint(self):
        return self._derive(linops=tuple(op.adjoint() for op in self.linops),
                            ishape=self.oshape, oshape=self.ishape)

    def size(self, dim):
        return dict(self._sizes).get(dim)

    def tile(self, slices):
        return Add(*(op.tile(slices) for op in self.linops))

    def split_kind(self, dim):
        return common_kind(self.linops, dim, dim in named(self.ishape) and dim in named(self.oshape))

    def split_refusal(self, dim):
        return "has terms that split differently along it, so tiles do not add up to the sum"
