"""Splitting and batching as pure functions.

- :func:`tile` — the sub-operator for ``{dim: slice}``;
- :func:`split_linop` — a nested tuple of tiles (one level per split dim);
- :class:`BatchSpec` and :func:`create_batched_linop` — split, place on
  devices, and reassemble into an ordinary operator equal to the original.
  Tiles of identical structure are stacked and run with ``torch.func.vmap``.
"""

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.utils._pytree as tp

from .compose import Chain
from .device import DeviceLike, ToDevice, as_device, leaf_devices, to
from .dims import DimLike, dim_name, named
from .linop import Linop, SplitKind, allow_loading
from .tiles import VmapTiles, _stackable, reassemble, stack_tiles

__all__ = ["tile", "size", "split_linop", "BatchSpec", "create_batched_linop"]


# ---- tiles -------------------------------------------------------------------
def _check_linop(fn, linop):
    if not isinstance(linop, Linop):
        raise TypeError(f"{fn}: expected a Linop, got {type(linop).__name__}")


def _by_name(fn, mapping, what):
    """``mapping`` with its keys as dim names (strings or one-name Dims)."""
    if not isinstance(mapping, dict):
        raise TypeError(f"{fn}: {what} must be a dict {{dim: ...}}, got {type(mapping).__name__}")
    out = {}
    for d, v in mapping.items():
        name = dim_name(d, fn)
        if name in out:
            raise ValueError(f"{fn}: dim {name!r} is given twice in {what}")
        out[name] = v
    return out


def _check_dim(fn, linop, dim):
    if not isinstance(dim, str):
        raise TypeError(f"{fn}: dim names are strings, got {dim!r}")
    if linop.split_kind(dim) == SplitKind.ABSENT and linop.size(dim) is None:
        raise ValueError(f"{fn}: {linop._name()} has no dim {dim!r} (its dims: {sorted(_all_dims(linop))})")
    n = linop.size(dim)
    if n is None:
        raise ValueError(f"{fn}: no operator in {linop._name()} fixes the size of dim {dim!r}, so it cannot be split")
    return n


def _all_dims(linop):
    """Every dim name in an operator tree, internal dims included."""
    dims = set(linop.dims)
    for op in _children(linop):
        dims |= _all_dims(op)
    return dims


def _check_kind(fn, linop, dim):
    kind = linop.split_kind(dim)
    if kind is None:
        culprit = _refusing(linop, dim)
        where = "" if culprit is linop else f"{culprit._name()}, inside it, "
        raise ValueError(
            f"{fn}: cannot split dim {dim!r} of {linop._name()}: {where}"
            f"{'it ' if culprit is linop else ''}{culprit.split_refusal(dim)}"
        )
    return kind


def _refusing(linop, dim):
    """The innermost operator that cannot be split along ``dim`` (for the error message)."""
    for child in _children(linop):
        if child.split_kind(dim) is None:
            return _refusing(child, dim)
    return linop


def _children(linop):
    return [op for op in tp.tree_leaves(linop, is_leaf=lambda t: isinstance(t, Linop) and t is not linop)
            if isinstance(op, Linop)]


def tile(linop: Linop, slices: Mapping[DimLike, slice]) -> Linop:
    """The sub-operator of ``linop`` for ``{dim: slice}`` (contiguous slices)."""
    _check_linop("tile", linop)
    slices = _by_name("tile", slices, "slices")
    for d, s in slices.items():
        n = _check_dim("tile", linop, d)
        if not isinstance(s, slice):
            raise TypeError(f"tile: the slice for dim {d!r} must be a slice, got {type(s).__name__}")
        if s.indices(n)[2] != 1:
            raise ValueError(f"tile: the slice for dim {d!r} must be contiguous (step 1), got {s}")
        if slice(*s.indices(n)[:2]) != slice(0, n):
            _check_kind("tile", linop, d)
    return linop.tile(slices)


def size(linop: Linop, dim: DimLike) -> int | None:
    """The size ``linop`` fixes for ``dim``, or None."""
    _check_linop("size", linop)
    return linop.size(dim_name(dim, "size"))


def _check_batch_sizes(fn, linop, batch_sizes):
    sizes = {}
    for d, b in batch_sizes.items():
        n = _check_dim(fn, linop, d)
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            raise TypeError(f"{fn}: batch size for dim {d!r} must be an int, got {b!r}")
        if b <= 0:
            raise ValueError(f"{fn}: batch size for dim {d!r} must be positive, got {b}")
        _check_kind(fn, linop, d)
        sizes[d] = n
    for d, n in sizes.items():  # every tile rule on the way must accept the split
        for s in _ranges(n, batch_sizes[d])[:2]:  # the first tile, and one not at the start
            if (s.start, s.stop) != (0, n):
                linop.tile({d: s})
    return sizes


def _ranges(n, b):
    """Contiguous tiles of at most ``b`` covering ``range(n)`` (one empty tile when n == 0)."""
    return [slice(i, min(i + b, n)) for i in range(0, n, b)] or [slice(0, 0)]


def _partial(slices, sizes):
    """The slices that do not cover their whole dim (a whole dim is not tiled)."""
    return {d: s for d, s in slices.items() if (s.start, s.stop) != (0, sizes[d])}


def split_linop(linop: Linop, batch_sizes: Mapping[DimLike, int]) -> tuple[Any, Any, Any]:
    """Split ``linop`` into tiles of at most ``batch_sizes[dim]`` along each dim.

    Returns ``(tiles, input_slices, output_slices)``: nested tuples with one
    level per split dim (in the order of ``batch_sizes``); the last tile
    along a dim may be smaller. ``input_slices[i][j]`` indexes the input of
    tile ``[i][j]`` (``x[input_slices[i][j]]``), likewise for outputs. The
    tiles are a pytree: a tree-map moves, casts or stacks them all.

    >>> import torch, funclinop as fl
    >>> A = fl.Dense(torch.randn(4, 3), ("C", "N"), ("N",), ("C",))
    >>> tiles, ins, outs = fl.split_linop(A, {"C": 3})
    >>> [t.weight.shape[0] for t in tiles], outs[1]
    ([3, 1], (Ellipsis, slice(3, 4, None)))
    """
    _check_linop("split_linop", linop)
    batch_sizes = _by_name("split_linop", batch_sizes, "batch_sizes")
    sizes = _check_batch_sizes("split_linop", linop, batch_sizes)
    dims = list(batch_sizes)

    def index(shape, slices):
        return (Ellipsis,) + tuple(slices.get(d, slice(None)) for d in named(shape))

    def grow(k, slices):
        if k == len(dims):
            return linop.tile(_partial(slices, sizes)), index(linop.ishape, slices), index(linop.oshape, slices)
        parts = [grow(k + 1, {**slices, dims[k]: s}) for s in _ranges(sizes[dims[k]], batch_sizes[dims[k]])]
        return tuple(zip(*parts)) if parts else ((), (), ())

    tiles, ins, outs = grow(0, {})
    return tiles, ins, outs


# ---- batching --------------------------------------------------------------------
class _FrozenDict(dict):
    """A read-only, hashable dict (for BatchSpec.batch_sizes)."""

    def __hash__(self):
        return hash(tuple(self.items()))

    def _readonly(self, *a, **k):
        raise TypeError("BatchSpec.batch_sizes is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly

    def __reduce__(self):
        # rebuilt from a plain dict: unpickling must not set items one by one
        return (_FrozenDict, (dict(self),))


def _device_grid(m):
    if m is None:
        return None
    if isinstance(m, np.ndarray):
        m = m.tolist()
    if isinstance(m, (list, tuple)):
        return tuple(_device_grid(d) for d in m)
    return as_device(m)


@dataclass(frozen=True)
class BatchSpec:
    """How to split an operator: ``batch_sizes`` per dim, and where each tile runs.

    ``device_matrix`` (a device, or nested lists of devices) is broadcast
    over the tile grid by repetition; ``base_device`` is where the input and
    output live (default: the operator's device). ``stack=True`` runs equal
    tiles at once with ``vmap`` (fast); ``stack=False`` runs them one after
    another, which bounds memory to one tile's intermediates.

    >>> import funclinop as fl
    >>> spec = fl.BatchSpec({"C": 2})
    >>> hash(spec) == hash(fl.BatchSpec({"C": 2}))
    True
    """

    batch_sizes: Mapping[str, int]
    device_matrix: Any = None
    base_device: DeviceLike | None = None
    stack: bool = True

    def __post_init__(self):
        batch_sizes = _by_name("BatchSpec", self.batch_sizes, "batch_sizes")
        # numpy ints become ints (a saved spec then needs no numpy to load)
        sizes = {d: int(b) if isinstance(b, np.integer) else b for d, b in batch_sizes.items()}
        object.__setattr__(self, "batch_sizes", _FrozenDict(sizes))
        object.__setattr__(self, "device_matrix", _device_grid(self.device_matrix))
        if self.base_device is not None:
            object.__setattr__(self, "base_device", as_device(self.base_device))

    def broadcast_device_matrix(self, linop: Linop) -> Any:
        """The device of every tile of ``linop``: nested tuples over the tile grid
        (one level per dim of ``batch_sizes``), ``device_matrix`` repeated over
        it, or the base device everywhere when there is no ``device_matrix``.

        >>> import torch, funclinop as fl
        >>> A = fl.Dense(torch.randn(4, 3), ("C", "N"), ("N",), ("C",))
        >>> fl.BatchSpec({"C": 1}, device_matrix=["cpu", "meta"]).broadcast_device_matrix(A)
        (device(type='cpu'), device(type='meta'), device(type='cpu'), device(type='meta'))
        """
        _check_linop("BatchSpec.broadcast_device_matrix", linop)
        sizes = _check_batch_sizes("BatchSpec.broadcast_device_matrix", linop, self.batch_sizes)
        grid = tuple(len(_ranges(sizes[d], b)) for d, b in self.batch_sizes.items())
        devices = _broadcast_devices(self, grid)
        if devices is None:
            base = self.base_device or _default_base(linop, None)
            devices = np.full(grid, base, dtype=object)
        return _nested(devices)


allow_loading(BatchSpec, _FrozenDict)


def _nested(arr):
    return tuple(_nested(a) for a in arr) if isinstance(arr, np.ndarray) else arr


def _broadcast_devices(spec, grid_shape):
    """The device of every tile: the matrix repeated over the tile grid."""
    m = spec.device_matrix
    if m is None:
        return None
    arr = np.empty(_nested_shape(m), dtype=object)
    for idx in np.ndindex(arr.shape):
        v = m
        for i in idx:
            v = v[i]
        arr[idx] = v
    if arr.ndim > len(grid_shape):
        raise ValueError(f"BatchSpec: device_matrix has {arr.ndim} dims but the tile grid {grid_shape} has "
                         f"{len(grid_shape)} (split dims {list(spec.batch_sizes)})")
    arr = arr.reshape((1,) * (len(grid_shape) - arr.ndim) + arr.shape)
    reps = []
    for have, want in zip(arr.shape, grid_shape):
        if have > want:
            raise ValueError(f"BatchSpec: device_matrix of shape {arr.shape} has more devices than the tile grid "
                             f"{grid_shape} (split dims {list(spec.batch_sizes)}) along one axis")
        reps.append(math.ceil(want / have))
    arr = np.tile(arr, reps)[tuple(slice(0, n) for n in grid_shape)]
    return arr


def _nested_shape(m):
    shape = []
    while isinstance(m, tuple):
        if not m:
            raise ValueError("BatchSpec: device_matrix is empty")
        shape.append(len(m))
        lens = {len(v) if isinstance(v, tuple) else -1 for v in m}
        if len(lens) != 1:
            raise ValueError("BatchSpec: device_matrix is ragged")
        m = m[0]
    return tuple(shape)


def _assemble(tiles, idim, odim, stack=False, extents=None):
    """Reassemble a row of tiles split along one dim (``extents``: their sizes along it)."""
    if len(tiles) == 1:
        return tiles[0]
    extents = list(extents) if extents is not None else [None] * len(tiles)
    if stack:
        # stacked tiles run as equal blocks: a shorter last tile stays on its own
        k = len(tiles) if _stackable(tiles) and len(set(extents)) == 1 else len(tiles) - 1
        if k >= 2 and _stackable(tiles[:k]) and _vmappable(tiles[0]) and (
                idim is not None or 0 in stack_tiles(tiles[:k])[1]):
            stacked, axes = stack_tiles(tiles[:k])
            group = VmapTiles(stacked, k, axes, idim, odim, extents[0])
            if k == len(tiles):
                return group
            tiles = [group, *tiles[k:]]
            extents = [None if extents[0] is None else k * extents[0], *extents[k:]]
    return reassemble(tiles, idim, odim, extents)


def _vmappable(tile):
    leaves = tp.tree_leaves(tile)
    if len({l.device for l in leaves if isinstance(l, torch.Tensor)}) > 1:
        return False
    if _has_type(tile, ToDevice):  # vmap cannot batch a device move
        return False
    return True


def _has_type(tree, cls):
    found = []
    tp.tree_map_only(cls, lambda x: found.append(x), tree, is_leaf=lambda x: isinstance(x, cls))
    return bool(found)


def _default_base(linop, default_device):
    if default_device is not None:
        return as_device(default_device)
    devices = leaf_devices(linop)
    return next(iter(devices)) if len(devices) == 1 else as_device("cpu")


def create_batched_linop(linop: Linop, batch_specs: "BatchSpec | Sequence[BatchSpec]",
                         default_device: DeviceLike | None = None) -> Linop:
    """Split ``linop`` by the first spec, place each tile, recurse, reassemble.

    A split dim in both ishape and oshape reassembles block-diagonally
    (Concat), in oshape only vertically (Concat), in ishape only
    horizontally (Concat, sums), in neither as an Add. Tiles off the base
    device are wrapped as ``ToDevice ∘ tile ∘ ToDevice``. The result is an
    ordinary operator numerically equal to ``linop``.

    >>> import torch, funclinop as fl
    >>> S = fl.Dense(torch.randn(4, 8), ("C", "N"), ("N",), ("C",))
    >>> B = fl.create_batched_linop(S, fl.BatchSpec({"C": 1}))
    >>> x = torch.randn(8)
    >>> torch.allclose(B(x), S(x), atol=1e-6)
    True
    """
    _check_linop("create_batched_linop", linop)
    specs = [batch_specs] if isinstance(batch_specs, BatchSpec) else batch_specs
    if not isinstance(specs, (list, tuple)) or not all(isinstance(s, BatchSpec) for s in specs):
        raise TypeError("create_batched_linop: batch_specs must be a BatchSpec or a list of BatchSpecs")
    for s in specs:  # validate everything before building anything
        _check_batch_sizes("create_batched_linop", linop, s.batch_sizes)
    return _batched(linop, list(specs), default_device)


def _batched(linop, specs, default_device):
    if not specs:
        return linop
    spec, rest = specs[0], specs[1:]
    base = spec.base_device or _default_base(linop, default_device)
    # A tile from an earlier spec may not fix a dim this spec splits (the
    # blocks of a Concat or Stack that act on any size of it): it is left
    # whole along that dim, and takes the first device along that axis.
    every = list(spec.batch_sizes)
    dims = [d for d in every if linop.size(d) is not None]
    matrix = (1,) * len(every) if spec.device_matrix is None else _nested_shape(spec.device_matrix)
    matrix = (1,) * (len(every) - len(matrix)) + matrix
    grid = tuple(len(_ranges(linop.size(d), spec.batch_sizes[d])) if d in dims else matrix[k]
                 for k, d in enumerate(every))
    devices = _broadcast_devices(spec, grid)  # checked before any tile is built
    split_axes = [k for k, d in enumerate(every) if d in dims]
    tiles, _, _ = split_linop(linop, {d: spec.batch_sizes[d] for d in dims})

    def device_at(idx):
        if devices is None:
            return base
        full = [0] * len(every)
        for k, i in zip(split_axes, idx):
            full[k] = i
        return devices[tuple(full)]

    def wrap(op, device):
        """Take the input from the base device to ``device`` and the output back."""
        if device == base:
            return op
        return Chain(ToDevice(base, device, op.ishape), op, ToDevice(device, base, op.oshape))

    # Inner specs first, then one move per device for all the tiles it gets:
    # leaves the tiles share (indices, views of one weight) stay shared there.
    placed = {}

    def inner(t, k, idx):
        if k == len(dims):
            target = device_at(idx)
            placed[idx] = (_batched(t, rest, target), target)
            return
        for i, sub in enumerate(t):
            inner(sub, k + 1, idx + (i,))

    inner(tiles, 0, ())
    for target in {device for _, device in placed.values()}:
        keys = [idx for idx, (_, device) in placed.items() if device == target]
        moved = to(tuple(placed[idx][0] for idx in keys), target)
        placed.update({idx: (op, target) for idx, op in zip(keys, moved)})

    def build(t, k, idx):
        """(operator, device it runs on, its input and output on that device)."""
        if k == len(dims):
            return placed[idx]
        row = [build(sub, k + 1, idx + (i,)) for i, sub in enumerate(t)]
        d = dims[k]
        extents = [r.stop - r.start for r in _ranges(linop.size(d), spec.batch_sizes[d])]
        targets = {device for _, device in row}
        if len(targets) == 1 and (spec.stack or targets == {base}):
            # one device: stack the tiles there and move the data once
            # (looped tiles each move their own part, which bounds memory)
            ops = [op for op, _ in row]
            return _assemble(ops, *blocks[d], stack=spec.stack, extents=extents), targets.pop()
        ops = [wrap(op, device) for op, device in row]
        return _assemble(ops, *blocks[d], stack=spec.stack, extents=extents), base

    blocks = {}
    for d in dims:
        kind = linop.split_kind(d)
        blocks[d] = (d if kind in (SplitKind.DIAG, SplitKind.IN) else None,
                     d if kind in (SplitKind.DIAG, SplitKind.OUT) else None)

    op, device = build(tiles, 0, ())
    return wrap(op, device)
