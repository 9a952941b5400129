"""The operator base: immutable pytree dataclasses with a small protocol.

Subclassing :class:`Linop` makes the class a dataclass (``typing``'s
``dataclass_transform`` tells type checkers and IDEs about the generated
``__init__``) and registers it with optree (global namespace) and with
torch's pytree registry, which is the one ``torch.func`` and
``torch.compile`` look at. Fields marked :func:`static` (names, shapes,
options) are part of the treedef; every other field is a pytree child
(tensors, other linops, pytrees of tensors).

One construction path, run by every constructor call (and so by
``dataclasses.replace``):

1. ``__init__`` sets each field once; a field's ``converter`` normalises
   the value before it is stored (``static(converter=as_shape)``);
2. ``_defaults()`` fills in arguments left None whose default depends on
   other arguments (override; rarely needed);
3. ``_check()`` validates the fields (override; raise a funclinop error);
4. ``_precompute()`` returns ``{name: value}`` for every :func:`derived`
   field (override; the base stores them);
5. the input check and devices are worked out from the finished operator.

After that nothing can be assigned. Operators derived from a valid one
without re-validating (an adjoint, a tile, a pytree rebuild) are made by
:meth:`Linop._derive`, the one copy path (see :func:`_assemble`).
"""

import abc
import dataclasses
import enum
import typing

import optree
import torch
import torch.utils._pytree as torch_pytree

from .dims import ELLIPSIS, named
from .errors import DeviceError, ShapeError

__all__ = [
    "Linop",
    "SplitKind",
    "SameShape",
    "field",
    "static",
    "derived",
    "apply",
    "adjoint",
    "normal",
    "tree_equal",
]

_OPTREE_GLOBAL = getattr(optree.registry, "__GLOBAL_NAMESPACE")
_MISSING = dataclasses.MISSING


def field(*, static=False, converter=None, default=_MISSING, default_factory=_MISSING,
          kw_only=_MISSING, repr=True):
    """A field of an operator.

    ``static=True`` makes it part of the treedef instead of a pytree child
    (it may not hold a tensor). ``converter(value, what)`` normalises the
    argument before it is stored; ``what`` names the operator and field for
    error messages (``"Diagonal ioshape"``), so :func:`funclinop.dims.as_shape`
    is a converter as it stands.
    """
    return dataclasses.field(
        default=default, default_factory=default_factory, kw_only=kw_only, repr=repr,
        metadata={"static": static, "converter": converter},
    )


def static(*, converter=None, default=_MISSING, default_factory=_MISSING, kw_only=_MISSING, repr=True):
    """A static field: part of the treedef, never a leaf (``field(static=True)``)."""
    return field(static=True, converter=converter, default=default,
                 default_factory=default_factory, kw_only=kw_only, repr=repr)


def derived(*, static=True, init: typing.Literal[False] = False, repr=None):
    """A field computed at construction by ``_precompute``, not passed in.

    Static by default; ``derived(static=False)`` is a derived pytree child
    (a tensor precomputed from the leaves, such as an index). Derived leaves
    are shown in the operator's display (they are data it holds), derived
    static values are not, unless ``repr`` says otherwise.
    """
    shown = not static if repr is None else repr
    return dataclasses.field(init=init, repr=shown, metadata={"static": static, "derived": True})


# What every operator class defines (as a field, a derived field, a property or a method).
_PROTOCOL = ("ishape", "oshape", "apply")


def _register(cls):
    fields = dataclasses.fields(cls)
    cls._children = tuple(f.name for f in fields if not f.metadata.get("static"))
    cls._statics = tuple(f.name for f in fields if f.metadata.get("static"))
    cls._converters = {f.name: f.metadata.get("converter") for f in fields if f.init}
    cls._arguments = frozenset(n for n in cls._statics if n in cls._converters)  # static init fields
    cls._derived = frozenset(f.name for f in fields if f.metadata.get("derived"))
    cls._missing = tuple(n for n in _PROTOCOL if n not in cls.__dataclass_fields__ and _abstract(cls, n))
    torch_pytree.register_pytree_node(
        cls,
        _flatten,
        lambda values, aux: _unflatten(cls, values, aux),
        serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
        flatten_with_keys_fn=lambda op: _flatten_with_names(op, torch_pytree.GetAttrKey),
    )
    optree.register_pytree_node(
        cls,
        lambda op: _flatten_with_names(op),
        lambda aux, values: _unflatten(cls, values, aux),
        path_entry_type=optree.GetAttrEntry,
        namespace=_OPTREE_GLOBAL,
    )
    allow_loading(cls)


# None children (an optional tensor) are recorded in the treedef, not given
# as leaves: torch's pytree counts None as a leaf and optree does not, and
# both must see the same leaves.
def _flatten(op):
    cls = type(op)
    values = [getattr(op, n) for n in cls._children]
    absent = tuple(k for k, v in enumerate(values) if v is None)
    if absent:
        values = [v for v in values if v is not None]
    return values, tuple(getattr(op, n) for n in cls._statics) + (op._icheck, absent)


def _flatten_with_names(op, key=None):
    """optree's flatten (values, aux, names), or torch's keyed one (``key(name)``, value) pairs."""
    values, aux = _flatten(op)
    names = [n for k, n in enumerate(type(op)._children) if k not in aux[-1]]
    if key is None:
        return values, aux, names
    return [(key(n), v) for n, v in zip(names, values)], aux


def _unflatten(cls, values, aux):
    # No constructor: during transforms the leaves may be non-tensors.
    values = list(values)
    for k in aux[-1]:
        values.insert(k, None)
    fields = dict(zip(cls._children, values))
    fields.update(zip(cls._statics, aux))
    fields["_icheck"] = aux[-2]
    return _assemble(cls, fields, _set_devices)  # the leaves may have moved (fl.to, a tree map)


def _abstract(cls, name):
    attr = getattr(cls, name, None)
    return attr is None or getattr(attr, "__isabstractmethod__", False)


def _assemble(cls, fields, finish=None):
    """An operator of type ``cls`` holding ``fields`` (every field, derived ones
    and ``_icheck`` included), made without its constructor: no conversion,
    no validation. The one place operators are copied; ``finish(op)``
    completes what depends on the leaves (:func:`_seal` or the devices only).
    """
    op = object.__new__(cls)
    op.__dict__.update(fields)
    if finish is not None:
        finish(op)
    return op


def _fill_defaults(op):
    d, converters = op.__dict__, type(op)._converters
    for name, value in op._defaults().items():
        if getattr(op, name) is not None:
            raise TypeError(f"{type(op).__name__}._defaults: {name!r} was given; only None is filled in")
        convert = converters[name]
        d[name] = value if convert is None else convert(value, f"{type(op).__name__} {name}")


def _holds_tensor(value):
    if isinstance(value, (str, int, float, type(None))):
        return False
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_holds_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    return any(isinstance(v, torch.Tensor) for v in optree.tree_leaves(value))


def allow_loading(*objects):
    """Let ``torch.load`` (``weights_only=True``, its default) rebuild ``objects``.

    Every operator class is registered when it is created; helper types that
    operators and batch specs hold are registered where they are defined. An
    entry is an object or an ``(object, "module.name")`` pair (for objects
    without a ``__module__``, such as ``Ellipsis``).
    """
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:
        add(list(objects))


# Static fields hold slices and Ellipsis (precomputed indexing plans).
allow_loading(slice, (Ellipsis, "builtins.Ellipsis"))


class SplitKind(str, enum.Enum):
    """How an operator is structured along one named dim, which decides how
    tiles along that dim reassemble into the operator (``Linop.split_kind``).

    Members compare equal to their values (``SplitKind.DIAG == "diag"``).
    An operator that mixes a dim (an FFT over it, a dense matrix between two
    dims, a rename) has no kind for it: ``split_kind`` returns None and
    splitting along that dim is refused.
    """

    DIAG = "diag"  #: in both shapes, acting on each index separately: block-diagonal tiles
    OUT = "out"  #: in the output only: tiles are rows, stacked along the dim
    IN = "in"  #: in the input only: tiles are columns, their outputs summed
    SUM = "sum"  #: internal (produced and consumed inside): the operator is the sum of its tiles
    ABSENT = "absent"  #: not a dim of the operator: every tile is the operator

    def __str__(self):
        return self.value

    def reversed(self):
        """The kind of the same dim in the adjoint (rows become columns)."""
        return {SplitKind.IN: SplitKind.OUT, SplitKind.OUT: SplitKind.IN}.get(self, self)


@typing.dataclass_transform(eq_default=False, field_specifiers=(dataclasses.field, field, static, derived))
class Linop:
    """A named linear operator: an immutable pytree with a small protocol.

    Subclasses declare their fields as a dataclass would (they become
    dataclasses automatically, immutable once built) and provide ``ishape``,
    ``oshape`` (fields, derived fields or properties) and ``apply``; a class
    missing one cannot be built. ``apply_adjoint`` (where it is cheaper than
    the vjp), ``adjoint``, ``normal``, ``tile`` and ``size`` have defaults.
    Arguments are normalised by their fields' converters, validated in
    ``_check`` and the rest is precomputed once in ``_precompute``;
    ``apply`` is tensor ops only.

    >>> import torch, funclinop as fl
    >>> from funclinop.dims import as_shape
    >>> from funclinop.linop import Linop, SameShape, derived, static
    >>> class Scale(SameShape, Linop):
    ...     weight: torch.Tensor
    ...     ioshape: tuple = static(default=None, converter=as_shape)
    ...     _c: torch.Tensor = derived(static=False)
    ...     def _check(self):
    ...         if self.weight.ndim:
    ...             raise ValueError(f"{self._name()}: weight must be 0-dim")
    ...     def _precompute(self):
    ...         return {"_c": self.weight.conj()}
    ...     def apply(self, x):
    ...         return x * self.weight
    >>> S = Scale(torch.tensor(2.0), ["N"])
    >>> S.ioshape, S(torch.ones(2))
    (('N',), tensor([2., 2.]))
    """

    # Each init field may be set once, by __init__ (through its converter);
    # after that the operator is immutable (dataclasses.FrozenInstanceError,
    # as a frozen dataclass). Not declared frozen=True: some torch.compile
    # versions mis-bind the constructor arguments of frozen dataclasses
    # built inside compiled code.
    def __setattr__(self, name, value):
        converters = type(self)._converters
        if name in self.__dict__ or name not in converters:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r} of an immutable {type(self).__name__}")
        if name in type(self)._arguments and _holds_tensor(value):
            from .display import value as _short

            raise TypeError(
                f"{type(self).__name__}: static field {name!r} cannot hold a tensor (got "
                f"{_short(value)}); tensors are pytree leaves, in fields that are not static"
            )
        convert = converters[name]
        self.__dict__[name] = value if convert is None else convert(value, f"{type(self).__name__} {name}")

    def __delattr__(self, name):
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r} of an immutable {type(self).__name__}")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_setup" in cls.__dict__:  # the former hook: it would silently not run
            raise TypeError(
                f"{cls.__name__}: _setup is gone; validate in _check, return the derived fields "
                f"from _precompute and normalise arguments with field converters"
            )
        dataclasses.dataclass(eq=False, repr=False)(cls)
        _register(cls)

    if typing.TYPE_CHECKING:  # every operator has them (fields, derived fields or properties)

        @property
        def ishape(self) -> tuple[str, ...]: ...

        @property
        def oshape(self) -> tuple[str, ...]: ...

    # Where the input must be (None: anywhere, MIXED: nowhere) and where the
    # output goes (None: where the input was). Set with the leaves by _seal,
    # unflatten and unpickling; these class defaults only cover operators
    # built some other way (they are then not checked).
    _idevice = None
    _odevice = None

    def __post_init__(self):
        """The end of every construction (a hand-written ``__init__`` calls it last)."""
        cls = type(self)
        if cls._missing:
            raise TypeError(
                f"{cls.__name__} cannot be built: it does not define {' or '.join(cls._missing)} "
                f"(every operator defines ishape, oshape and apply)"
            )
        if cls._defaults is not Linop._defaults:
            _fill_defaults(self)
        self._check()
        values = self._precompute()
        if values.keys() != cls._derived:
            raise TypeError(
                f"{cls.__name__}._precompute returned {sorted(values)}, expected its derived "
                f"fields {sorted(cls._derived)}"
            )
        self.__dict__.update(values)
        _seal(self)

    def __setstate__(self, state):
        # unpickling (torch.load, copy): a map_location may have moved the leaves
        self.__dict__.update(state)
        _set_devices(self)

    def _defaults(self):
        """``{name: value}`` for arguments given as None whose default depends on
        other arguments (override): the value goes through the field's
        converter and is stored, so ``dataclasses.replace`` sees it as given."""
        return {}

    def _check(self):
        """Validate the fields, raising a funclinop error naming the operator (override)."""

    def _precompute(self):
        """``{name: value}`` for every derived field, from the checked fields (override)."""
        return {}

    def _derive(self, **fields):
        """A copy with ``fields`` replaced, without re-validating: for operators
        derived from this (valid) one, such as its adjoint. Derived fields are
        copied as they are, so change every one that ``fields`` affects."""
        return _assemble(type(self), {**self.__dict__, **fields}, _seal)

    # ---- protocol -------------------------------------------------------
    @abc.abstractmethod
    def apply(self, x):
        """y = A x for a tensor ``x`` of shape ``(..., *ishape)`` (no shape checks: see ``A(x)``)."""

    def apply_adjoint(self, y):
        """x = Aᴴ y. Default: the vjp of ``apply`` (exact for C-linear maps)."""
        return _vjp_adjoint(self, y)

    def adjoint(self):
        """The operator Aᴴ."""
        from .ops.adjoint import Adjoint

        return Adjoint(self)

    def normal(self):
        """The operator AᴴA, mapping ``ishape`` to ``ishape``."""
        from .compose import Chain

        return Chain(self, self.adjoint())

    def tile(self, slices):
        """The sub-operator for ``{dim: slice}``; dims the operator lacks are ignored."""
        dims = [d for d in slices if d in self.dims]
        if not dims:
            return self
        raise ValueError(
            f"{self._name()}: cannot split over dims {dims}; "
            f"{type(self).__name__} has no tile rule"
        )

    def size(self, dim):
        """The size this operator fixes for ``dim``, or None."""
        return None

    def _device_flow(self, parts):
        """``(input device, output device)`` from the ``parts`` of the leaves and
        child operators (in field order), each such a pair; None is any device
        (input) or the input's device (output). Default: everything on one
        device. A Chain folds its factors in order; ToDevice moves."""
        return parallel_devices(parts)

    def split_kind(self, dim):
        """How the operator is structured along ``dim`` (a :class:`SplitKind`),
        which decides how its tiles reassemble, or None when the operator mixes
        the dim and tiles cannot rebuild it. With ``size`` and ``tile`` this is
        the operator's splitting contract: ``tile`` slices exactly the dims
        whose kind is not None. A leaf with a dim in both shapes that it does
        not act on elementwise, or that renames a dim, must override this; an
        operator without a tile rule of its own cannot be split along its dims."""
        i, o = dim in named(self.ishape), dim in named(self.oshape)
        if (i or o) and type(self).tile is Linop.tile:
            return None
        if i and o:
            return SplitKind.DIAG
        return SplitKind.OUT if o else SplitKind.IN if i else SplitKind.ABSENT

    def split_refusal(self, dim):
        """Why tiles along ``dim`` cannot rebuild this operator (for error messages)."""
        if type(self).tile is Linop.tile:
            return f"{type(self).__name__} has no tile rule"
        return "does not act on it index by index, so tiles along it do not reassemble into the operator"

    # ---- derived --------------------------------------------------------
    @property
    def dims(self):
        return (set(named(self.ishape)) | set(named(self.oshape)))

    @property
    def H(self):
        return self.adjoint()

    @property
    def N(self):
        return self.normal()

    def dim_sizes(self):
        """``{dim: size}`` for every dim whose size the operator fixes."""
        out = {}
        for d in self.dims:
            n = self.size(d)
            if n is not None:
                out[d] = n
        return out

    def _name(self):
        try:
            return f"{type(self).__name__}({_fmt(self.ishape)} -> {_fmt(self.oshape)})"
        except (AttributeError, TypeError):  # during construction, before the shapes are known
            return type(self).__name__

    def __call__(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self._name()}: expected a torch.Tensor, got {type(x).__name__}")
        ndim, ellipsis, checks = self._icheck
        shape = x.shape
        if len(shape) != ndim and not (ellipsis and len(shape) > ndim):
            _raise_ndim(self, shape)
        for axis, n, dim in checks:
            if shape[axis] != n:
                raise ShapeError(
                    f"{self._name()}: input dim {dim!r} has size {shape[axis]}, "
                    f"expected {n} (input shape {tuple(shape)})"
                )
        device = self._idevice
        if device is not None and x.device != device:
            _raise_device_error(self, x)
        try:
            return self.apply(x)
        except Exception as e:
            # The error keeps its type and message; a note names the operator
            # (e.g. a user's kernel that cannot mix dtypes).
            _add_note(e, f"while applying {self._name()} to an input of dtype "
                         f"{str(x.dtype).replace('torch.', '')} and shape {tuple(x.shape)}")
            raise

    # ---- algebra --------------------------------------------------------
    def __matmul__(self, other):
        if isinstance(other, Linop):
            from .compose import Chain

            return Chain(other, self)
        if isinstance(other, torch.Tensor):
            return self(other)
        raise TypeError(
            f"{self._name()} @ {type(other).__name__}: expected a Linop or a torch.Tensor"
        )

    def __rmatmul__(self, other):
        raise TypeError(
            f"{type(other).__name__} @ {self._name()}: only a Linop can be composed with a Linop"
        )

    def __add__(self, other):
        if not isinstance(other, Linop):
            return NotImplemented
        from .compose import Add

        return Add(self, other)

    def __sub__(self, other):
        if not isinstance(other, Linop):
            return NotImplemented
        return self + (-other)

    def __neg__(self):
        return -1.0 * self

    def __mul__(self, c):
        return self._scale(c, right=True)

    def __rmul__(self, c):
        return self._scale(c, right=False)

    def _scale(self, c, right):
        from .compose import Chain
        from .ops.diagonal import Scalar

        if isinstance(c, bool) or not isinstance(c, (int, float, complex, torch.Tensor)):
            return NotImplemented
        if isinstance(c, torch.Tensor) and c.ndim != 0:
            raise TypeError(f"{self._name()}: can only scale by a scalar, got shape {tuple(c.shape)}")
        if right:
            return Chain(Scalar(c, self.ishape), self)
        return Chain(self, Scalar(c, self.oshape))

    def __eq__(self, other):
        """Structural equality: same treedef and equal leaves (``A.H.H == A``)."""
        return tree_equal(self, other)

    def __hash__(self):
        # consistent with __eq__: equal operators have the same type and leaf shapes
        leaves = optree.tree_leaves(self)
        return hash((type(self), tuple((tuple(t.shape), t.dtype) for t in leaves if isinstance(t, torch.Tensor))))

    def __repr__(self):
        """An indented tree, one operator per line (see :mod:`funclinop.display`)."""
        from .display import text

        return text(self)

    def _repr_pretty_(self, p, cycle):  # IPython's console
        p.text(repr(self))

    def _repr_html_(self):  # Jupyter, marimo: a collapsible tree
        from .display import html_tree

        return html_tree(self)


class SameShape:
    """Mixin for operators whose input and output dims are one ``ioshape`` field."""

    @property
    def ishape(self):
        return self.ioshape

    @property
    def oshape(self):
        return self.ioshape


def _fmt(shape):
    return "(" + ", ".join(shape) + ")"


def _raise_device_error(op, x):
    where = {}
    for path, leaf in zip(*optree.tree_flatten_with_path(op)[:2]):
        if _pins(leaf):
            where.setdefault(str(leaf.device), ".".join(map(str, path)) or "leaf")
    leaves = ", ".join(f"{d} (e.g. {p})" for d, p in where.items())
    if op._idevice is MIXED:
        raise DeviceError(
            f"{op._name()}: the input is on {x.device} but the operator's leaves are on {leaves}, "
            f"and no input device fits them all (parts on different devices need a ToDevice "
            f"between them); move them with fl.to"
        )
    held = f"its leaves are on {leaves}" if where else "it moves data between devices"
    raise DeviceError(
        f"{op._name()}: the input is on {x.device} but the operator takes its input on "
        f"{op._idevice} ({held}); move one with fl.to"
    )


# ---- devices -------------------------------------------------------------------
# Each operator knows, from its leaves, the device its input must be on: the
# check in __call__ is one comparison. It is worked out whenever the leaves
# are set (construction, _derive, unflatten, unpickling), from the tensor
# leaves and the child operators' own (input, output) devices.

MIXED = "leaves on devices that no input fits"


def _pins(leaf):
    """A tensor leaf that fixes the device; a CPU scalar does not (torch uses
    a 0-dim CPU tensor with a tensor on any device, as a Python number)."""
    return isinstance(leaf, torch.Tensor) and (leaf.ndim > 0 or not leaf.is_cpu)


def _device_parts(value, parts):
    if isinstance(value, torch.Tensor):
        if _pins(value):
            parts.append((value.device, None))
    elif isinstance(value, Linop):
        parts.append((value._idevice, value._odevice))
    elif isinstance(value, (tuple, list)):
        for v in value:
            _device_parts(v, parts)
    elif isinstance(value, dict):
        for v in value.values():
            _device_parts(v, parts)
    elif value is not None:  # another pytree (a FunctionLinop's params)
        for v in optree.tree_leaves(value, is_leaf=lambda t: isinstance(t, Linop)):
            if isinstance(v, (torch.Tensor, Linop)):
                _device_parts(v, parts)


def _set_devices(op):
    d, parts = op.__dict__, []
    for n in type(op)._children:
        v = d.get(n)
        if isinstance(v, torch.Tensor):  # the common case, inline: _derive runs this per A.H
            if v.ndim or not v.is_cpu:
                parts.append((v.device, None))
        else:
            _device_parts(v, parts)
    d["_idevice"], d["_odevice"] = op._device_flow(parts)


def _seal(op):
    """Set what is derived from an operator's fields at every construction:
    the input check (sizes, carried in the treedef) and the devices."""
    # (min ndim, has ellipsis, ((axis from the end, size, dim), ...))
    object.__setattr__(op, "_icheck", _input_check(op))
    _set_devices(op)


def parallel_devices(parts):
    """All parts take the same input device and give the same output device."""
    if len(parts) == 1 and parts[0][1] is None:  # one leaf: the usual case
        return parts[0]
    idevice = None
    for i, _ in parts:
        if i is MIXED:
            return MIXED, None
        if i is not None:
            if idevice is None:
                idevice = i
            elif i != idevice:
                return MIXED, None
    odevice = None
    for k, (_, o) in enumerate(parts):
        o = idevice if o is None else o  # None: the part's output stays on the input's device
        if k == 0:
            odevice = o
        elif o != odevice:
            return MIXED, None
    return idevice, (None if odevice == idevice else odevice)


def sequential_devices(parts):
    """Parts applied one after the other: each takes the previous one's output."""
    idevice = current = None  # current None: still on the (any) input device
    for i, o in parts:
        if i is MIXED:
            return MIXED, None
        if i is not None:
            if current is None:
                idevice = current = i
            elif i != current:
                return MIXED, None
        if o is not None:
            current = o
    return idevice, (None if current == idevice else current)


def _add_note(error, note):
    if hasattr(error, "add_note"):  # Python >= 3.11
        error.add_note(note)


def _raise_ndim(op, shape):
    names = named(op.ishape)
    hint = ""
    if op.ishape[:1] != (ELLIPSIS,) and len(shape) > len(names):
        hint = f"; to accept leading batch dims write {_fmt((ELLIPSIS,) + names)}"
    raise ShapeError(
        f"{op._name()}: input of shape {tuple(shape)} has {len(shape)} dims, "
        f"expected {'at least ' if op.ishape[:1] == (ELLIPSIS,) else ''}"
        f"{len(names)} for ishape {_fmt(op.ishape)}{hint}"
    )


def _input_check(op):
    ishape = op.ishape
    names = named(ishape)
    checks = []
    for k, d in enumerate(names):
        n = op.size(d)
        if n is not None:
            checks.append((k - len(names), n, d))
    return (len(names), len(names) < len(ishape), tuple(checks))


def _vjp_adjoint(op, y):
    x0 = torch.zeros(_input_shape(op, y), dtype=y.dtype, device=y.device)
    out, pullback = torch.func.vjp(op.apply, x0)
    if out.dtype != y.dtype:
        # The pullback returns x0's dtype; Aᴴy has the dtype of y promoted
        # with the operator's, which A's output on y's dtype shows.
        dtype = torch.promote_types(y.dtype, out.dtype)
        if dtype != x0.dtype:
            out, pullback = torch.func.vjp(op.apply, x0.to(dtype))
        y = y.to(out.dtype)
    return pullback(y)[0]


def _input_shape(op, y):
    """The input shape matching an output ``y``, from fixed sizes and shared dims."""
    onames = named(op.oshape)
    batch = tuple(y.shape[: y.ndim - len(onames)])
    shape = []
    for d in named(op.ishape):
        n = op.size(d)
        if n is None and d in onames:
            n = y.shape[y.ndim - len(onames) + onames.index(d)]
        if n is None:
            raise ShapeError(
                f"{op._name()}: cannot infer the size of input dim {d!r} to form the "
                f"adjoint by vjp; give the operator an explicit adjoint or fix the size"
            )
        shape.append(n)
    return batch + tuple(shape)


def tree_equal(a, b) -> bool:
    """True when two pytrees have the same structure and equal leaves."""
    la, ta = optree.tree_flatten(a, none_is_leaf=True)
    lb, tb = optree.tree_flatten(b, none_is_leaf=True)
    if ta != tb:
        return False
    for x, y in zip(la, lb):
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
                return False
            if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x.resolve_conj(), y.resolve_conj()):
                return False
        elif x is not y and x != y:
            return False
    return True


def apply(linop, x):
    """``linop(x)``: apply an operator to a tensor (with shape checks)."""
    return linop(x)


def adjoint(linop):
    """``linop.H``: the adjoint operator."""
    return linop.adjoint()


def normal(linop):
    """``linop.N``: the normal operator AᴴA."""
    return linop.normal()
