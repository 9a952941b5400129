"""Axis bookkeeping: Rearrange (einops-style reshape/permute), SumReduce and Repeat.

No einops at runtime: patterns are parsed once at construction into a short
static plan of torch view ops (unflatten, squeeze, movedim, flatten,
unsqueeze), so ``apply`` is a handful of tensor calls.
"""

import math
import re
from collections.abc import Mapping


from ..dims import ELLIPSIS, as_shape, named, sorted_sizes
from ..errors import ShapeError
from ..linop import Linop, derived, static

__all__ = ["Rearrange", "SumReduce", "Repeat"]


# ---- pattern parsing ------------------------------------------------------


def _parse(pattern, what):
    """``(has_ellipsis, groups)``: each group a tuple of axis names (``()`` for a unit axis)."""
    if not isinstance(pattern, str):
        raise TypeError(f"{what}: pattern must be a str, got {type(pattern).__name__}")
    tokens = re.findall(r"\.\.\.|[()]|[^\s().]+", pattern)
    if "".join(tokens) != "".join(pattern.split()):
        raise ValueError(f"{what}: cannot parse pattern {pattern!r} (stray characters)")
    groups, current, seen = [], None, set()
    for tok in tokens:
        if tok == "(":
            if current is not None:
                raise ValueError(f"{what}: nested parentheses in pattern {pattern!r}")
            current = []
        elif tok == ")":
            if current is None:
                raise ValueError(f"{what}: unbalanced ')' in pattern {pattern!r}")
            groups.append(tuple(current))
            current = None
        elif tok == ELLIPSIS:
            if current is not None:
                raise ValueError(f"{what}: '...' inside parentheses is not supported ({pattern!r})")
            groups.append(ELLIPSIS)
        elif tok.isdigit():
            if int(tok) != 1:
                raise ValueError(f"{what}: anonymous axis {tok!r} in {pattern!r}; only '1' is supported")
            if current is None:
                groups.append(())
        elif tok.isidentifier():
            if tok in seen:
                raise ValueError(f"{what}: axis {tok!r} appears twice in pattern {pattern!r}")
            seen.add(tok)
            if current is None:
                groups.append((tok,))
            else:
                current.append(tok)
        else:
            raise ValueError(f"{what}: invalid axis name {tok!r} in pattern {pattern!r}")
    if current is not None:
        raise ValueError(f"{what}: unbalanced '(' in pattern {pattern!r}")
    if groups.count(ELLIPSIS) > 1 or ELLIPSIS in groups[1:]:
        raise ValueError(f"{what}: '...' may only lead a pattern, got {pattern!r}")
    has_ellipsis = groups[:1] == [ELLIPSIS]
    return has_ellipsis, tuple(groups[1:] if has_ellipsis else groups)


def _lengths(axes_lengths, what):
    if axes_lengths is None:
        return ()
    if not isinstance(axes_lengths, (Mapping, tuple)):
        raise TypeError(f"{what}: axes_lengths must be a mapping, got {type(axes_lengths).__name__}")
    items = dict(axes_lengths).items()
    for k, v in items:
        if not isinstance(k, str):
            raise TypeError(f"{what}: axes_lengths keys must be str, got {k!r}")
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what}: axes_lengths[{k!r}] must be a positive int, got {v!r}")
    return tuple(sorted(items))


def _plan(igroups, ogroups, lengths):
    """Static steps turning the trailing input axes into the output axes."""
    steps = []
    n = len(igroups)
    for i, g in enumerate(igroups):
        if not g:
            steps.append(("squeeze", i - n))
        elif len(g) > 1:
            steps.append(("unflatten", i - n, tuple(lengths.get(a, -1) for a in g)))
    e_in = [a for g in igroups for a in g]
    e_out = [a for g in ogroups for a in g]
    m = len(e_in)
    if e_in != e_out:
        steps.append(("movedim", tuple(e_in.index(a) - m for a in e_out), tuple(range(-m, 0))))
    for j, g in enumerate(ogroups):
        r = sum(len(h) for h in ogroups[j + 1:])
        if not g:
            steps.append(("unsqueeze", -(r + 1)))
        elif len(g) > 1:
            steps.append(("flatten", -(r + len(g)), -(r + 1)))
    return tuple(steps)


def _run(plan, x):
    for step in plan:
        kind = step[0]
        if kind == "squeeze":
            x = x.squeeze(step[1])
        elif kind == "unflatten":
            x = x.unflatten(step[1], step[2])
        elif kind == "movedim":
            x = x.movedim(step[1], step[2])
        elif kind == "flatten":
            x = x.flatten(step[1], step[2])
        else:
            x = x.unsqueeze(step[1])
    return x


def _group_size(group, lengths):
    if all(a in lengths for a in group):
        return math.prod([lengths[a] for a in group])
    return None


def _slice_len(s, n):
    return len(range(*s.indices(n)))


class Rearrange(Linop):
    """Reshape and permute axes with an einops-style pattern.

    ``Rearrange(ipattern, opattern, ishape, oshape)`` does what
    ``einops.rearrange(x, f"{ipattern} -> {opattern}", **axes_lengths)``
    does, without einops: the patterns are compiled once into torch view ops.
    Each group of ``ipattern`` (an axis, a parenthesised composite ``(a b)``,
    ``()`` or ``1`` for a unit axis) is one dim of ``ishape``; likewise for
    ``opattern`` and ``oshape``. A leading ``...`` in the patterns matches the
    leading ``"..."`` of the shapes. ``axes_lengths`` gives the sizes needed
    to split composite input axes (at most one unknown axis per group).

    The adjoint is the inverse rearrangement (it needs the lengths to split
    the composite output axes); the normal is the identity.

    >>> import torch, funclinop as fl
    >>> A = fl.Rearrange("(c h) w", "h w c", ("CH", "W"), ("H", "W", "C"), {"c": 2})
    >>> A(torch.zeros(6, 5)).shape
    torch.Size([3, 5, 2])
    >>> A.H(torch.zeros(3, 5, 2)).shape
    torch.Size([6, 5])
    """

    ipattern: str = static()
    opattern: str = static()
    ishape: tuple = static(default=None, converter=as_shape)
    oshape: tuple = static(default=None, converter=as_shape)
    axes_lengths: tuple = static(default=None, converter=lambda lengths, what: _lengths(lengths, "Rearrange"))
    # the parsed patterns, the view-op plans (forward, inverse) and the fixed sizes
    _groups: tuple = derived()
    _plan: tuple = derived()
    _sizes: tuple = derived()

    def _precompute(self):
        ie, igroups = _parse(self.ipattern, "Rearrange ipattern")
        oe, ogroups = _parse(self.opattern, "Rearrange opattern")
        lengths, ishape, oshape = self.axes_lengths, self.ishape, self.oshape
        if ie != oe:
            raise ValueError(f"Rearrange: '...' must appear in both patterns or neither "
                             f"({self.ipattern!r} -> {self.opattern!r})")
        inames = {a for g in igroups for a in g}
        onames = {a for g in ogroups for a in g}
        if inames != onames:
            raise ValueError(f"Rearrange: axes {sorted(inames ^ onames)} appear on one side of "
                             f"{self.ipattern!r} -> {self.opattern!r} only")
        for k, _ in lengths:
            if k not in inames:
                raise ValueError(f"Rearrange: axes_lengths names {k!r}, which is not in the pattern")
        for shape, groups, e, side in ((ishape, igroups, ie, "input"), (oshape, ogroups, oe, "output")):
            if len(named(shape)) != len(groups) or (shape[:1] == (ELLIPSIS,)) != e:
                raise ShapeError(f"{self._name()}: {side} pattern has {len(groups)} groups"
                                 f"{' after ...' if e else ''}, but the {side} shape is {shape}")
        known = dict(lengths)
        for g in igroups:
            unknown = [a for a in g if a not in known]
            if len(g) > 1 and len(unknown) > 1:
                raise ValueError(f"{self._name()}: cannot split input group ({' '.join(g)}): "
                                 f"give axes_lengths for all but one of {unknown}")
        inverse = None
        if all(len(g) < 2 or sum(a not in known for a in g) < 2 for g in ogroups):
            inverse = _plan(ogroups, igroups, known)
        sizes = {}
        for shape, groups in ((oshape, ogroups), (ishape, igroups)):
            for d, g in zip(named(shape), groups):
                n = _group_size(g, known)
                if n is not None and sizes.setdefault(d, n) != n:
                    raise ShapeError(f"{self._name()}: dim {d!r} has size {n} on input and {sizes[d]} on output")
        return dict(_groups=(igroups, ogroups), _plan=(_plan(igroups, ogroups, known), inverse),
                    _sizes=sorted_sizes(sizes))

    def apply(self, x):
        return _run(self._plan[0], x)

    def apply_adjoint(self, y):
        self._check_inverse()
        return _run(self._plan[1], y)

    def adjoint(self):
        self._check_inverse()
        # Swap the two directions without parsing again (cheap, and traceable).
        return self._derive(ipattern=self.opattern, opattern=self.ipattern, ishape=self.oshape,
                        oshape=self.ishape, _groups=self._groups[::-1], _plan=self._plan[::-1])

    def _check_inverse(self):
        if self._plan[1] is None:
            known = dict(self.axes_lengths)
            groups = [g for g in self._groups[1] if sum(a not in known for a in g) > 1]
            raise ValueError(
                f"{self._name()}: the adjoint must split output group ({' '.join(groups[0])}); "
                f"give axes_lengths for all but one of its axes"
            )

    def normal(self):
        from .identity import Identity

        return Identity(self.ishape)

    def size(self, dim):
        return dict(self._sizes).get(dim)

    def tile(self, slices):
        lengths = dict(self.axes_lengths)
        for d, s in slices.items():
            if d not in self.dims or s is None or s == slice(None):
                continue
            axis = self._single_axis(d)
            if axis is None:
                n = self.size(d)
                if n is not None and _slice_len(s, n) == n:
                    continue
                raise ValueError(
                    f"{self._name()}: cannot split dim {d!r}: only a dim that is the same single "
                    f"axis in both patterns (and both shapes) can be split"
                )
            if axis in lengths:
                lengths[axis] = _slice_len(s, lengths[axis])
        return Rearrange(self.ipattern, self.opattern, self.ishape, self.oshape, lengths)

    def split_kind(self, dim):
        if dim in self.dims and self._single_axis(dim) is None:
            return None
        return super().split_kind(dim)

    def split_refusal(self, dim):
        return "reshapes, merges or renames it (only a dim that is the same single axis on both sides splits)"

    def _single_axis(self, dim):
        inames, onames = named(self.ishape), named(self.oshape)
        if dim not in inames or dim not in onames:
            return None
        gi, go = self._groups[0][inames.index(dim)], self._groups[1][onames.index(dim)]
        return gi[0] if gi == go and len(gi) == 1 else None


# ---- SumReduce / Repeat -----------------------------------------------------


def _ellipsis_match(op, ishape, oshape):
    if (ishape[:1] == (ELLIPSIS,)) != (oshape[:1] == (ELLIPSIS,)):
        raise ShapeError(f"{op._name()}: '...' must lead both ishape and oshape or neither")


def _sizes(sizes, what):
    if sizes is None:
        return {}
    if not isinstance(sizes, (Mapping, tuple)):
        raise TypeError(f"{what} must be a mapping {{dim: size}}, got {type(sizes).__name__}")
    out = dict(sizes)
    for k, v in out.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what}[{k!r}] must be a positive int, got {v!r}")
    return out


def _dim_names(names, what):
    """Converter: a sequence of dim names (None: none)."""
    names = names or ()
    if isinstance(names, str) or not all(isinstance(d, str) for d in names):
        raise TypeError(f"{what} must be a sequence of dim names")
    return tuple(names)


def _size_pairs(sizes, what):
    """Converter: ``{dim: size}`` (None: none) as sorted ``(dim, size)`` pairs."""
    return sorted_sizes(_sizes(sizes, what))


def _move(src_names, dst_names):
    """movedim args taking trailing axes ordered as ``src_names`` to ``dst_names``, or None."""
    if tuple(src_names) == tuple(dst_names):
        return None
    n = len(src_names)
    return (tuple(src_names.index(d) - n for d in dst_names), tuple(range(-n, 0)))


def _reduce_plan(inames, onames):
    """(summed axes, movedim) for summing the dims of ``inames`` missing from ``onames``."""
    kept = [d for d in inames if d in onames]
    axes = tuple(inames.index(d) - len(inames) for d in inames if d not in onames)
    return axes, _move(kept, onames)


def _reduce(plan, x):
    axes, move = plan
    y = x.sum(axes)
    return y if move is None else y.movedim(*move)


def _repeat_plan(inames, onames, n_repeats):
    """(movedim, index adding unit axes, expand sizes) for broadcasting to ``onames``."""
    kept = [d for d in onames if d in inames]
    index = (Ellipsis,) + tuple(slice(None) if d in inames else None for d in onames)
    expand = tuple(n_repeats.get(d, 1) if d not in inames else -1 for d in onames)
    return _move(list(inames), kept), index, expand


def _repeat(plan, x):
    move, index, expand = plan
    if move is not None:
        x = x.movedim(*move)
    x = x[index]
    return x.expand(x.shape[: x.ndim - len(expand)] + expand)


class SumReduce(Linop):
    """Sum over the dims of ``ishape`` that ``oshape`` lacks (adjoint of :class:`Repeat`).

    ``oshape`` keeps the other dims, in any order (a transpose is folded in).
    The adjoint expands each summed dim back: to its size in ``sizes``
    (``{dim: size}``), or, for a dim in ``broadcast_dims``, to a size-1 axis
    that broadcasts (torchlinops' convention, for a sum that follows a
    broadcast). A summed dim with neither has no adjoint: the forward works,
    ``A.H`` raises a ShapeError naming the dim.

    >>> import torch, funclinop as fl
    >>> A = fl.SumReduce(("C", "N"), ("N",), sizes={"C": 3})
    >>> A(torch.ones(3, 2))
    tensor([3., 3.])
    >>> A.H(torch.tensor([1.0, 2.0]))
    tensor([[1., 2.],
            [1., 2.],
            [1., 2.]])
    >>> fl.SumReduce(("C", "N"), ("N",), broadcast_dims=("C",)).H(torch.ones(2)).shape
    torch.Size([1, 2])
    """

    ishape: tuple = static(converter=as_shape)
    oshape: tuple = static(converter=as_shape)
    sizes: tuple = static(default=None, kw_only=True, converter=_size_pairs)
    broadcast_dims: tuple = static(default=None, kw_only=True, converter=_dim_names)
    _plans: tuple = derived()  # (sum, expand back); the second None without every size

    def _precompute(self):
        ishape, oshape = self.ishape, self.oshape
        _ellipsis_match(self, ishape, oshape)
        inames, onames = named(ishape), named(oshape)
        extra = [d for d in onames if d not in inames]
        if extra:
            raise ShapeError(f"{self._name()}: output dims {extra} are not input dims")
        reduced = [d for d in inames if d not in onames]
        if not reduced:
            raise ShapeError(f"{self._name()}: must sum over at least one dim")
        sizes = dict(self.sizes)
        for d in sizes:
            if d not in reduced:
                raise ValueError(f"{self._name()}: sizes names {d!r}, which is not a summed dim {reduced}")
        broadcast = self.broadcast_dims
        for d in broadcast:
            if d not in reduced or d in sizes:
                raise ValueError(f"{self._name()}: broadcast dim {d!r} must be a summed dim {reduced} "
                                 f"without a size in sizes")
        # The adjoint needs every summed dim's size (1 for a broadcast dim).
        counts = {d: sizes.get(d, 1) for d in reduced if d in sizes or d in broadcast}
        expand = _repeat_plan(onames, inames, counts) if len(counts) == len(reduced) else None
        return {"_plans": (_reduce_plan(inames, onames), expand)}

    def apply(self, x):
        return _reduce(self._plans[0], x)

    def apply_adjoint(self, y):
        if self._plans[1] is None:
            self._refuse_adjoint()
        return _repeat(self._plans[1], y)

    def adjoint(self):
        if self._plans[1] is None:
            self._refuse_adjoint()
        return Repeat(dict(self.sizes), self.oshape, self.ishape, self.broadcast_dims)

    def _refuse_adjoint(self):
        known = dict(self.sizes).keys() | set(self.broadcast_dims)
        unknown = [d for d in named(self.ishape) if d not in named(self.oshape) and d not in known]
        raise ShapeError(
            f"{self._name()}: the size of summed dim {unknown[0]!r} is unknown, so the adjoint "
            f"cannot expand back to it; give sizes={{{unknown[0]!r}: n}} (or broadcast_dims="
            f"({unknown[0]!r},) for a size-1 axis that broadcasts)"
        )

    def size(self, dim):
        return dict(self.sizes).get(dim)

    def tile(self, slices):
        sizes = dict(self.sizes)
        for d, s in slices.items():
            if d in sizes and s is not None:
                sizes[d] = _slice_len(s, sizes[d])
        return SumReduce(self.ishape, self.oshape, sizes=sizes, broadcast_dims=self.broadcast_dims)


class Repeat(Linop):
    """Broadcast the input along new dims (adjoint of :class:`SumReduce`).

    Every dim of ``ishape`` is in ``oshape`` (in any order); each new dim of
    ``oshape`` is repeated ``n_repeats[dim]`` times, except the
    ``broadcast_dims``, which are size-1 axes left to broadcasting (their
    size is not fixed and they are never split). The output is an expanded
    view of the input (no copy). The normal is the scalar ∏ n_repeats.

    >>> import torch, funclinop as fl
    >>> A = fl.Repeat({"C": 2}, ("N",), ("C", "N"))
    >>> A(torch.tensor([1.0, 2.0]))
    tensor([[1., 2.],
            [1., 2.]])
    >>> A.H(torch.ones(2, 2))
    tensor([2., 2.])
    """

    n_repeats: tuple = static(converter=_size_pairs)
    ishape: tuple = static(converter=as_shape)
    oshape: tuple = static(converter=as_shape)
    broadcast_dims: tuple = static(default=None, converter=_dim_names)
    _counts: tuple = derived()  # (dim, count) for every new dim, 1 for a broadcast one
    _plans: tuple = derived()  # (repeat, sum back)

    def _precompute(self):
        ishape, oshape = self.ishape, self.oshape
        _ellipsis_match(self, ishape, oshape)
        inames, onames = named(ishape), named(oshape)
        missing = [d for d in inames if d not in onames]
        if missing:
            raise ShapeError(f"{self._name()}: input dims {missing} are not output dims")
        new = [d for d in onames if d not in inames]
        if not new:
            raise ShapeError(f"{self._name()}: must add at least one dim")
        broadcast = self.broadcast_dims
        for d in broadcast:
            if d not in new:
                raise ValueError(f"{self._name()}: broadcast dim {d!r} is not a new output dim {new}")
        n = dict(self.n_repeats)
        for d, k in n.items():
            if d not in new:
                raise ValueError(f"{self._name()}: n_repeats names {d!r}, which is not a new output dim {new}")
            if d in broadcast and k != 1:
                raise ValueError(f"{self._name()}: broadcast dim {d!r} must have n_repeats 1, got {k}")
        for d in new:
            if d not in n and d not in broadcast:
                raise ValueError(f"{self._name()}: no repeat count for new dim {d!r}")
        counts = tuple((d, n.get(d, 1)) for d in new)
        return dict(_counts=counts, _plans=(_repeat_plan(inames, onames, dict(counts)), _reduce_plan(onames, inames)))

    def apply(self, x):
        return _repeat(self._plans[0], x)

    def apply_adjoint(self, y):
        return _reduce(self._plans[1], y)

    def adjoint(self):
        sizes = {d: k for d, k in self.n_repeats if d not in self.broadcast_dims}
        return SumReduce(self.oshape, self.ishape, sizes=sizes, broadcast_dims=self.broadcast_dims)

    def normal(self):
        from .diagonal import Scalar

        return Scalar(float(math.prod([k for _, k in self._counts])), self.ishape)

    def size(self, dim):
        if dim in self.broadcast_dims:
            return None
        return dict(self.n_repeats).get(dim)

    def tile(self, slices):
        n = dict(self.n_repeats)
        for d, s in slices.items():
            if d in n and d not in self.broadcast_dims and s is not None:
                n[d] = _slice_len(s, n[d])
        return Repeat(n, self.ishape, self.oshape, self.broadcast_dims)
