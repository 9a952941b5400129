"""Concat and Stack: block operators along an existing or a new dim."""

import torch

from .compose import Add, _linops_arg, common_kind, merged_sizes
from .dims import ELLIPSIS, axis_of, named, sorted_sizes, unify
from .errors import ShapeError
from .linop import Linop, SplitKind, _fmt, derived, static

__all__ = ["Concat", "Stack"]


def _common(name, linops, skip_i=None, skip_o=None):
    """Unified (ishape, oshape) of the children, ignoring sizes along the block dims."""
    ishape, oshape = linops[0].ishape, linops[0].oshape
    for op in linops[1:]:
        i, o = unify(ishape, op.ishape), unify(oshape, op.oshape)
        if i is None or o is None:
            raise ShapeError(f"{name}: {op._name()} does not match the first block "
                             f"({_fmt(ishape)} -> {_fmt(oshape)})")
        ishape, oshape = i, o
    return ishape, oshape


def _block_sizes(name, linops, dim, given=None):
    """Each block's size along ``dim``: its own, else the one ``given``."""
    if given is not None and len(given) != len(linops):
        raise ValueError(f"{name}: block_sizes has {len(given)} entries for {len(linops)} blocks")
    sizes = []
    for k, op in enumerate(linops):
        n = op.size(dim)
        if given is not None and n is not None and n != given[k]:
            raise ShapeError(f"{name}: {op._name()} has size {n} along {dim!r}, block_sizes says {given[k]}")
        n = given[k] if n is None and given is not None else n
        if n is None:
            raise ShapeError(f"{name}: the size of {op._name()} along {dim!r} is unknown; "
                             f"every block must fix its size along the concatenated dim (or pass block_sizes)")
        sizes.append(n)
    return tuple(sizes)


def _sizes_except(name, linops, dims):
    sizes = {}
    for op in linops:
        for d, n in op.dim_sizes().items():
            if d in dims:
                continue
            if sizes.setdefault(d, n) != n:
                raise ShapeError(f"{name}: dim {d!r} has size {sizes[d]} in one block and {n} in {op._name()}")
    return sizes


def _local(s, offset, n):
    """The part of global slice ``s`` that falls in block [offset, offset + n), as a local slice."""
    start, stop = max(s.start - offset, 0), min(s.stop - offset, n)
    return slice(start, stop) if start < stop else None


class Concat(Linop):
    """Block operator along an existing dim.

    - ``odim`` only: vertical, outputs concatenated along ``odim``;
    - ``idim`` only: horizontal, the input is split along ``idim`` and the
      outputs sum;
    - both: block-diagonal.

    Every block must fix its size along the concatenated dims, or
    ``block_sizes`` gives them (for blocks that act on any size of that dim,
    such as a Scalar). Tiling maps a global slice onto each block's local
    slice and drops the blocks outside it.

    >>> import torch, funclinop as fl
    >>> A = fl.Dense(torch.ones(2, 3), ("M", "N"), ("N",), ("M",))
    >>> B = fl.Dense(torch.zeros(1, 3), ("M", "N"), ("N",), ("M",))
    >>> fl.Concat(A, B, odim="M")(torch.ones(3))
    tensor([3., 3., 0.])
    """

    linops: tuple[Linop, ...]
    idim: str = static(default=None)
    odim: str = static(default=None)
    block_sizes: tuple = static(default=None, converter=lambda b, what: None if b is None else tuple(b))
    ishape: tuple = derived()
    oshape: tuple = derived()
    isizes: tuple = derived()
    osizes: tuple = derived()
    _sizes: tuple = derived()

    def __init__(self, *ops, linops=None, idim=None, odim=None, block_sizes=None):
        self.linops = _linops_arg("Concat", ops, linops)
        self.idim, self.odim, self.block_sizes = idim, odim, block_sizes
        self.__post_init__()

    def _precompute(self):
        ops, idim, odim = self.linops, self.idim, self.odim
        if idim is None and odim is None:
            raise ValueError("Concat: give idim, odim or both")
        ishape, oshape = _common("Concat", ops)
        if idim is not None and idim not in named(ishape):
            raise ShapeError(f"Concat: idim {idim!r} is not an input dim of the blocks {_fmt(ishape)}")
        if odim is not None and odim not in named(oshape):
            raise ShapeError(f"Concat: odim {odim!r} is not an output dim of the blocks {_fmt(oshape)}")
        for d, other, side in ((idim, oshape, "output"), (odim, ishape, "input")):
            if d is not None and d != (odim if d == idim else idim) and d in named(other):
                raise ShapeError(f"Concat: {d!r} is also an {side} dim of the blocks {_fmt(other)}; "
                                 f"concatenating along it on one side only would give it two sizes")
        given = self.block_sizes
        isizes = _block_sizes("Concat", ops, idim, given) if idim is not None else None
        osizes = _block_sizes("Concat", ops, odim, given) if odim is not None else None
        sizes = _sizes_except("Concat", ops, {idim, odim})
        if idim is not None:
            sizes[idim] = sum(isizes)
        if odim is not None:
            sizes[odim] = sum(osizes)
        return dict(ishape=ishape, oshape=oshape, isizes=isizes, osizes=osizes,
                  _sizes=sorted_sizes(sizes))

    def apply(self, x):
        if self.idim is not None:
            xs = torch.split(x, self.isizes, dim=axis_of(self.ishape, self.idim))
        else:
            xs = (x,) * len(self.linops)
        ys = [op.apply(xi) for op, xi in zip(self.linops, xs)]
        if self.odim is not None:
            return torch.cat(ys, dim=axis_of(self.oshape, self.odim))
        return _sum(ys)

    def apply_adjoint(self, y):
        if self.odim is not None:
            ys = torch.split(y, self.osizes, dim=axis_of(self.oshape, self.odim))
        else:
            ys = (y,) * len(self.linops)
        xs = [op.apply_adjoint(yi) for op, yi in zip(self.linops, ys)]
        if self.idim is not None:
            return torch.cat(xs, dim=axis_of(self.ishape, self.idim))
        return _sum(xs)

    def adjoint(self):
        return Concat(*(op.adjoint() for op in self.linops), idim=self.odim, odim=self.idim,
                      block_sizes=self.block_sizes)

    def normal(self):
        if self.idim is None:  # vertical: AᴴA = Σ AᵢᴴAᵢ
            return Add(*(op.normal() for op in self.linops))
        if self.odim is not None:  # block-diagonal: blocks of normals
            return Concat(*(op.normal() for op in self.linops), idim=self.idim, odim=self.idim,
                          block_sizes=self.isizes)
        return super().normal()

    def size(self, dim):
        return dict(self._sizes).get(dim)

    def tile(self, slices):
        _check_renamed_blocks(self, slices)
        blocks = list(self.linops)
        keep = [True] * len(blocks)
        local = [dict(slices) for _ in blocks]
        for dim, sizes in ((self.idim, self.isizes), (self.odim, self.osizes)):
            if dim is None or dim not in slices:
                continue
            s = _as_range(self, dim, slices[dim])
            offset = 0
            for k, n in enumerate(sizes):
                part = _local(s, offset, n)
                if part is None:
                    keep[k] = False
                else:
                    local[k][dim] = part
                offset += n
        tiles = [op.tile(loc) for op, loc, k in zip(blocks, local, keep) if k]
        if not tiles:
            raise ValueError(f"{self._name()}: the slice {slices} selects no block")
        if len(tiles) == 1:
            return tiles[0]
        if self.idim is not None and self.odim is not None and self.idim != self.odim:
            # only other dims were sliced: every block is kept whole along idim and odim
            return Concat(*tiles, idim=self.idim, odim=self.odim, block_sizes=self.block_sizes)
        dim, sizes = (self.idim, self.isizes) if self.idim is not None else (self.odim, self.osizes)
        kept = tuple(_length(loc.get(dim), n) for loc, n, k in zip(local, sizes, keep) if k)
        return Concat(*tiles, idim=self.idim, odim=self.odim, block_sizes=kept)

    def split_kind(self, dim):
        return block_kind(self.linops, dim, self.idim, self.odim,
                          dim in named(self.ishape) and dim in named(self.oshape))

    def split_refusal(self, dim):
        return block_refusal(self, dim)


def block_kind(linops, dim, idim, odim, shared):
    """Split kind of a block operator along ``dim`` (blocks along idim/odim).

    Blocks along one dim (rows, columns, or the diagonal of one dim) split
    along it; a block-diagonal operator from ``idim`` to a different ``odim``
    pairs entries of two dims, which no tile along one of them rebuilds.
    """
    if dim not in (idim, odim):
        return common_kind(linops, dim, shared)
    if idim is not None and odim is not None and idim != odim:
        return None
    want = SplitKind.DIAG if idim == odim else SplitKind.OUT if dim == odim else SplitKind.IN
    return want if common_kind(linops, dim, False) == want else None


def _block_dims(op):
    """The names of the block dims of a Concat or Stack (a Stack keeps its (name, index) arguments)."""
    return (op._idim, op._odim) if isinstance(op, Stack) else (op.idim, op.odim)


def block_refusal(op, dim):
    idim, odim = _block_dims(op)
    if dim in (idim, odim) and None not in (idim, odim) and idim != odim:
        return (f"is block-diagonal from {idim!r} to {odim!r}: a tile along one of them "
                f"would need the blocks of the other")
    return "has blocks that split differently along it"


def _check_renamed_blocks(op, slices):
    """A block-diagonal operator between two different dims cannot be tiled along either."""
    idim, odim = _block_dims(op)
    if idim is None or odim is None or idim == odim:
        return
    for d in (idim, odim):
        if d in slices and _as_range(op, d, slices[d]) != slice(0, op.size(d)):
            raise ValueError(f"{op._name()}: cannot split dim {d!r}: it {block_refusal(op, d)}")


def _length(s, n):
    """The length of slice ``s`` (None: the whole ``n``)."""
    return n if s is None else len(range(*s.indices(n)))


def _as_range(op, dim, s):
    n = op.size(dim)
    start, stop, step = s.indices(n)
    if step != 1:
        raise ValueError(f"{op._name()}: tiles along {dim!r} must be contiguous slices, got step {step}")
    return slice(start, max(start, stop))


def _sum(ys):
    y = ys[0]
    for t in ys[1:]:
        y = y + t
    return y


def _dim_and_index(name, arg, shape):
    if arg is None:
        return None, None
    dim, idx = (arg, 0) if isinstance(arg, str) else tuple(arg)
    if not isinstance(dim, str) or not isinstance(idx, int):
        raise TypeError(f"{name}: a stacking dim is a name or a (name, index) pair, got {arg!r}")
    if dim in shape:
        raise ShapeError(f"{name}: new dim {dim!r} is already in {_fmt(shape)}")
    names = named(shape)
    if not -len(names) - 1 <= idx <= len(names):
        raise ValueError(f"{name}: index {idx} for new dim {dim!r} is out of range for {_fmt(shape)}")
    return dim, idx


def _insert(shape, dim, idx):
    lead = shape[:1] if shape[:1] == (ELLIPSIS,) else ()
    names = list(named(shape))
    names.insert(idx if idx >= 0 else len(names) + idx + 1, dim)
    return lead + tuple(names)


class Stack(Linop):
    """Block operator along a new dim (size = number of blocks).

    ``odim`` stacks the outputs along a new output dim; ``idim`` takes a new
    input dim, applies block k to slice k and sums; both give a
    block-diagonal operator. A dim is a name (inserted first among the named
    dims) or ``(name, index)``.

    >>> import torch, funclinop as fl
    >>> A = fl.Stack(fl.Scalar(1.0, ("N",)), fl.Scalar(2.0, ("N",)), odim="S")
    >>> A(torch.ones(2))
    tensor([[1., 1.],
            [2., 2.]])
    """

    linops: tuple[Linop, ...]
    idim: object = static(default=None)
    odim: object = static(default=None)
    ishape: tuple = derived()
    oshape: tuple = derived()
    # the names of the new dims (idim and odim keep the arguments, which may be pairs)
    _idim: str = derived()
    _odim: str = derived()
    _iaxis: int = derived()
    _oaxis: int = derived()
    _sizes: tuple = derived()

    def __init__(self, *ops, linops=None, idim=None, odim=None):
        self.linops = _linops_arg("Stack", ops, linops)
        self.idim, self.odim = idim, odim
        self.__post_init__()

    def _precompute(self):
        if self.idim is None and self.odim is None:
            raise ValueError("Stack: give idim, odim or both")
        ishape, oshape = _common("Stack", self.linops)
        idim, iidx = _dim_and_index("Stack", self.idim, ishape)
        odim, oidx = _dim_and_index("Stack", self.odim, oshape)
        if idim is not None:
            ishape = _insert(ishape, idim, iidx)
        if odim is not None:
            oshape = _insert(oshape, odim, oidx)
        sizes = dict(merged_sizes("Stack", self.linops))
        for d in (idim, odim):
            if d is not None:
                sizes[d] = len(self.linops)
        return dict(
            _idim=idim, _odim=odim, ishape=ishape, oshape=oshape,
            _iaxis=None if idim is None else axis_of(ishape, idim),
            _oaxis=None if odim is None else axis_of(oshape, odim),
            _sizes=sorted_sizes(sizes),
        )

    def apply(self, x):
        xs = x.unbind(self._iaxis) if self.idim is not None else (x,) * len(self.linops)
        ys = [op.apply(xi) for op, xi in zip(self.linops, xs)]
        return torch.stack(ys, self._oaxis) if self.odim is not None else _sum(ys)

    def apply_adjoint(self, y):
        ys = y.unbind(self._oaxis) if self.odim is not None else (y,) * len(self.linops)
        xs = [op.apply_adjoint(yi) for op, yi in zip(self.linops, ys)]
        return torch.stack(xs, self._iaxis) if self.idim is not None else _sum(xs)

    def adjoint(self):
        # idim and odim place the new dims among the blocks' own dims, which the
        # adjoint blocks swap: the arguments swap with them
        return Stack(*(op.adjoint() for op in self.linops), idim=self.odim, odim=self.idim)

    def normal(self):
        if self.idim is None:
            return Add(*(op.normal() for op in self.linops))
        if self.odim is not None:
            return Stack(*(op.normal() for op in self.linops), idim=self.idim, odim=self.idim)
        return super().normal()

    def size(self, dim):
        return dict(self._sizes).get(dim)

    def split_kind(self, dim):
        if dim in (self._idim, self._odim):
            if self._idim is not None and self._odim is not None and self._idim != self._odim:
                return None  # block k maps entry k of idim to entry k of odim
            return (SplitKind.DIAG if self._idim == self._odim
                    else SplitKind.OUT if dim == self._odim else SplitKind.IN)
        return common_kind(self.linops, dim, dim in named(self.ishape) and dim in named(self.oshape))

    def split_refusal(self, dim):
        return block_refusal(self, dim)

    def tile(self, slices):
        _check_renamed_blocks(self, slices)
        keep = range(len(self.linops))
        for dim in {self._idim, self._odim} - {None}:
            if dim in slices:
                keep = [k for k in keep if k in range(*_as_range(self, dim, slices[dim]).indices(len(self.linops)))]
        if not keep:
            raise ValueError(f"{self._name()}: the slice {slices} selects no block")
        rest = {d: s for d, s in slices.items() if d not in (self._idim, self._odim)}
        return Stack(*(self.linops[k].tile(rest) for k in keep), idim=self.idim, odim=self.odim)
