"""Stacked tiles: equal operators run as one ``torch.func.vmap``.

:func:`stack_tiles` turns tiles of one structure into a single operator
whose leaves carry a leading tile axis (leaves all tiles share stay as
they are), and :class:`VmapTiles` applies it with ``vmap``. Both flatten
and rebuild operators on every call, so they use the fast flatten below
instead of torch's generic pytree functions. :func:`reassemble` is the
unstacked form: tiles along one dim as a ``Concat`` (or an ``Add``).
"""

import torch

from . import display
from ._vmap import vmap_leaves
from .compose import Add
from .concat import Concat
from .dims import axis_of, named, sorted_sizes
from .linop import Linop, _assemble, derived, static

__all__ = ["VmapTiles", "stack_tiles", "reassemble", "flatten_linop", "unflatten_linop"]


# ---- a fast flatten for operator trees -------------------------------------------
# torch's pytree functions are generic and slow (tens of µs for a small chain);
# stacked tiles flatten and rebuild their operator on every call, so they use
# this one: Linop nodes and tuples are nodes, everything else is a leaf.


def flatten_linop(tree):
    """``(leaves, structure)`` of an operator tree (Linops and tuples are nodes)."""
    leaves = []
    return leaves, _flatten_into(tree, leaves)


def _flatten_into(tree, leaves):
    if isinstance(tree, Linop):
        # the node itself carries the static fields (its __dict__ is copied on rebuild)
        return (type(tree), tree, tuple(_flatten_into(getattr(tree, n), leaves) for n in tree._children))
    if type(tree) is tuple:
        return (tuple, None, tuple(_flatten_into(t, leaves) for t in tree))
    leaves.append(tree)
    return None


def unflatten_linop(structure, leaves):
    """Inverse of :func:`flatten_linop`."""
    return _build(structure, iter(leaves))


def _build(structure, it):
    if structure is None:
        return next(it)
    cls, node, kids = structure
    if cls is tuple:
        return tuple(_build(k, it) for k in kids)
    fields = dict(node.__dict__)
    for n, k in zip(cls._children, kids):
        fields[n] = _build(k, it)
    return _assemble(cls, fields)


# ---- stacked tiles -------------------------------------------------------------
def _inspectable(ts):
    """Storage can be compared: not while tracing, not inside a torch.func transform."""
    if torch.compiler.is_compiling():
        return False
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return wrapped is not None and not any(wrapped(t) for t in ts)


def _same_leaf(ts):
    """All tiles hold the same tensor (a leaf the split did not slice)."""
    t0 = ts[0]
    if not _inspectable(ts):  # only the same object counts
        return all(t is t0 for t in ts)
    return all(t is t0 or (
        t.device == t0.device and t.device.type != "meta" and t.shape == t0.shape
        and t.stride() == t0.stride() and t.dtype == t0.dtype and t.storage_offset() == t0.storage_offset()
        and t.is_conj() == t0.is_conj() and t.is_neg() == t0.is_neg()
        and t.untyped_storage().data_ptr() == t0.untyped_storage().data_ptr()) for t in ts)


def _stack_leaf(ts):
    """Stack tensors; evenly spaced views of one storage are stacked as a view."""
    t0 = ts[0]
    if not _inspectable(ts):
        return torch.stack(ts)
    same = (t0.device.type != "meta" and all(
        t.shape == t0.shape and t.stride() == t0.stride() and t.dtype == t0.dtype
        and t.is_conj() == t0.is_conj() and t.is_neg() == t0.is_neg()
        and t.untyped_storage().data_ptr() == t0.untyped_storage().data_ptr() for t in ts))
    if same and len(ts) > 1:
        step = ts[1].storage_offset() - t0.storage_offset()
        if step > 0 and all(t.storage_offset() == t0.storage_offset() + k * step for k, t in enumerate(ts)):
            base = t0.conj() if t0.is_conj() else t0
            view = base.as_strided((len(ts),) + tuple(base.shape), (step,) + base.stride(), base.storage_offset())
            return view.conj() if t0.is_conj() else view
    return torch.stack(ts)


def _stackable(tiles):
    leaves0, spec0 = flatten_linop(tiles[0])
    for t in tiles[1:]:
        leaves, spec = flatten_linop(t)
        if not _same_structure(spec, spec0):
            return False
        for a, b in zip(leaves, leaves0):
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
                if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
                    return False
            elif a is not b:
                return False
    return True


def _same_structure(a, b):
    """Same node types and equal static fields, recursively."""
    if a is None or b is None:
        return a is b
    if a[0] is not b[0] or len(a[2]) != len(b[2]):
        return False
    if a[0] is not tuple:
        na, nb = a[1], b[1]
        for n in a[0]._statics:
            va, vb = getattr(na, n), getattr(nb, n)
            if va is not vb and va != vb:
                return False
    return all(_same_structure(x, y) for x, y in zip(a[2], b[2]))


def stack_tiles(tiles):
    """``(stacked, axes)``: one operator holding the tiles' leaves, and per
    leaf 0 (stacked on a new leading axis) or None (shared by all tiles, kept
    as it is: vmap does not batch it)."""
    flat = [flatten_linop(t) for t in tiles]
    spec = flat[0][1]
    leaves, axes = [], []
    for k in range(len(flat[0][0])):
        ts = [f[0][k] for f in flat]
        if not isinstance(ts[0], torch.Tensor) or _same_leaf(ts):
            leaves.append(ts[0])
            axes.append(None)
        else:
            leaves.append(_stack_leaf(ts))
            axes.append(0)
    return unflatten_linop(spec, leaves), tuple(axes)


def _unstack(stacked, axes, n):
    leaves, spec = flatten_linop(stacked)
    return [unflatten_linop(spec, [l[k] if a == 0 else l for l, a in zip(leaves, axes)]) for k in range(n)]


class VmapTiles(Linop):
    """Equal tiles run as one ``torch.func.vmap`` over their stacked leaves.

    ``stacked`` is a tile whose tensor leaves marked 0 in ``axes`` carry a
    leading axis of ``count`` tiles (leaves marked None are shared by all
    tiles). Along ``idim`` the input is split into ``count`` equal blocks,
    along ``odim`` the outputs are concatenated; without ``odim`` the
    outputs sum. This is the stacked form of a Concat (or Add) of equal
    tiles: one batched kernel per op instead of a Python loop.
    """

    stacked: Linop
    count: int = static()
    axes: tuple = static()
    idim: str = static(default=None)
    odim: str = static(default=None)
    block: int = static(default=None)  # tile size along idim/odim where tiles do not fix it
    ishape: tuple = derived()
    oshape: tuple = derived()
    _sizes: tuple = derived()
    _block: tuple = derived()

    def _precompute(self):
        if not isinstance(self.stacked, Linop):
            raise TypeError(f"VmapTiles: stacked must be a Linop, got {type(self.stacked).__name__}")
        tile0 = _unstack(self.stacked, self.axes, 1)[0]
        sizes = dict(tile0.dim_sizes())
        bi = sizes.get(self.idim, self.block) if self.idim else None
        bo = sizes.get(self.odim, self.block) if self.odim else None
        for d, b in ((self.idim, bi), (self.odim, bo)):
            if d is not None:
                if b is None:
                    raise ValueError(f"VmapTiles: tiles do not fix the size of {d!r}")
                sizes[d] = b * self.count
        iaxis = axis_of(tile0.ishape, self.idim) if self.idim else None
        oaxis = axis_of(tile0.oshape, self.odim) if self.odim else None
        # (input axis, its block size, output axis) for apply; swapped for the adjoint
        return dict(ishape=tile0.ishape, oshape=tile0.oshape, _sizes=sorted_sizes(sizes),
                    _block=((iaxis, bi, oaxis), (oaxis, bo, iaxis)))

    def tiles(self):
        return _unstack(self.stacked, self.axes, self.count)

    def _run(self, adjoint, x, axes):
        iaxis, block, oaxis = axes
        leaves, spec = flatten_linop(self.stacked)

        def one(leaves, x):
            op = unflatten_linop(spec, leaves)
            return op.apply_adjoint(x) if adjoint else op.apply(x)

        if iaxis is not None:  # the input's tile blocks become the vmapped axis
            x = x.unflatten(iaxis, (self.count, block)).movedim(iaxis - 1, 0)
        ys = vmap_leaves(one, leaves, self.axes, x, None if iaxis is None else 0, self.count)
        if oaxis is None:
            return ys.sum(0)
        p = ys.ndim + oaxis  # the tile outputs join along the output dim
        return ys.movedim(0, p - 1).flatten(p - 1, p)

    def apply(self, x):
        return self._run(False, x, self._block[0])

    def apply_adjoint(self, y):
        return self._run(True, y, self._block[1])

    def _restack(self, tiles, idim, odim):
        stacked, axes = stack_tiles(tiles)
        return VmapTiles(stacked, self.count, axes, idim, odim, self.block)

    def adjoint(self):
        return self._restack([t.adjoint() for t in self.tiles()], self.odim, self.idim)

    def normal(self):
        if self.odim is not None and self.idim in (None, self.odim):
            return self._restack([t.normal() for t in self.tiles()], self.idim, self.idim)
        return super().normal()

    def size(self, dim):
        return dict(self._sizes).get(dim)

    def tile(self, slices):
        d = self.idim or self.odim
        block = None if d is None else dict(self._sizes)[d] // self.count
        return reassemble(self.tiles(), self.idim, self.odim, [block] * self.count).tile(slices)

    def split_kind(self, dim):
        from .concat import block_kind

        tile0 = _unstack(self.stacked, self.axes, 1)
        return block_kind(tile0, dim, self.idim, self.odim,
                          dim in named(self.ishape) and dim in named(self.oshape))


@display.options.register
def _show_vmap_tiles(op: VmapTiles):
    d = op.idim or op.odim
    if d is None:
        return [f"{op.count} tiles stacked, summed"]
    return [f"{op.count} tiles stacked along {d} ({dict(op._sizes)[d] // op.count} each)"]


@display.stacked_leaves.register
def _stacked_vmap_tiles(op: VmapTiles):
    leaves, _ = flatten_linop(op.stacked)
    return op.count, {id(t) for t, a in zip(leaves, op.axes) if a == 0}


def reassemble(tiles, idim, odim, extents=None):
    """Tiles split along one dim, as one operator: a block ``Concat`` along
    ``idim``/``odim`` (``extents``: the tiles' sizes along it, where they do
    not fix them), or the ``Add`` of the tiles when the dim is internal."""
    if len(tiles) == 1:
        return tiles[0]
    if idim is None and odim is None:
        return Add(*tiles)
    sizes = None if extents is None or None in extents else tuple(extents)
    return Concat(*tiles, idim=idim, odim=odim, block_sizes=sizes)
