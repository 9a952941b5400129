"""Patch extraction (ArrayToBlocks) and its adjoint, overlap-add (BlocksToArray).

An n-D block extraction is a composition of 1-D ones, one per grid axis:
gathering ``stride * i + k`` along that axis. Each 1-D step is one
``index_select`` with a small index (``nblocks * block_size`` entries, built
by two ``arange`` calls from static sizes), and its adjoint is the matching
``index_add``; both have batching rules, gradients and compile support, so no
Python loop over blocks is needed. The index is not stored as a leaf so that
``torch.func.grad`` over an operator tree holding blocks still works (integer
leaves cannot take gradients).
"""

import math
import torch

from ..dims import ELLIPSIS, as_optional_shape, as_shape
from ..errors import ShapeError
from ..linop import Linop, _assemble, _seal, derived, static
from ._util import check_slices, fixed_kind, int_tuple

__all__ = ["ArrayToBlocks", "BlocksToArray"]


def _ints(value, what, ndim=None):
    return int_tuple(value, what, length=ndim, scalar=True)


def _int_or_ints(value, what):
    """Converter: an int, or a sequence of ints as a tuple (validated with the grid)."""
    return tuple(value) if isinstance(value, (list, torch.Size)) else value


def _geometry(op, cls):
    """Validate sizes, mask and names; the derived geometry (ishape and oshape
    as the ``(input, output)`` of ArrayToBlocks)."""
    grid = _ints(op.grid_size, f"{cls}: grid_size")
    ndim = len(grid)
    if ndim not in (1, 2, 3):
        raise ValueError(f"{cls}: grid_size must have 1, 2 or 3 entries, got {grid}")
    block = _ints(op.block_size, f"{cls}: block_size", ndim)
    stride = _ints(op.stride if op.stride is not None else 1, f"{cls}: stride", ndim)
    for g, b in zip(grid, block):
        if b > g:
            raise ShapeError(f"{cls}: block_size {block} is larger than grid_size {grid}")
    nblocks = tuple((g - b) // s + 1 for g, b, s in zip(grid, block, stride))
    mask, nsel = op.mask, None
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"{cls}: mask must be a torch.Tensor or None, got {type(mask).__name__}")
        if tuple(mask.shape) != block:
            raise ShapeError(f"{cls}: mask of shape {tuple(mask.shape)} does not match block_size {block}")
        if mask.dtype == torch.bool:
            nsel = int(mask.sum())
            if nsel == 0:
                raise ValueError(f"{cls}: boolean mask selects no element of the block")
    batch = op.batch_shape
    array = _names(op.array_shape, _default("Nx Ny Nz", ndim), f"{cls} array_shape")
    default_blocks = _default("Bx By Bz", ndim) + (("K",) if nsel else _default("Kx Ky Kz", ndim))
    blocks = _names(op.blocks_shape, default_blocks, f"{cls} blocks_shape")
    if len(array) != ndim:
        raise ShapeError(f"{cls}: array_shape {array} must name the {ndim} grid axes")
    want = ndim + (1 if nsel else ndim)
    if len(blocks) != want:
        layout = "block counts then one masked-element dim" if nsel else "block counts then block offsets"
        raise ShapeError(f"{cls}: blocks_shape {blocks} must have {want} dims ({layout})")
    ishape = as_shape(batch + array, f"{cls} batch_shape + array_shape")
    oshape = as_shape(batch + blocks, f"{cls} batch_shape + blocks_shape")
    inner = (nsel,) if nsel else block
    select = mask.reshape(-1).nonzero().reshape(-1) if nsel else None
    shared = set(array) & set(blocks)
    if shared:
        raise ShapeError(f"{cls}: dims {sorted(shared)} are in both array_shape and blocks_shape")
    sizes = tuple(zip(array, grid)) + tuple(zip(blocks, nblocks + inner))
    return dict(
        ishape=ishape, oshape=oshape, _grid=grid, _block=block, _stride=stride, _array=array,
        _blocks=blocks, _sizes=sizes, _nblocks=nblocks, _select=select,
    )


def _default(names, ndim):
    return tuple(names.split()[:ndim])


def _names(shape, default, what):
    shape = default if shape is None else as_shape(shape, what)
    if ELLIPSIS in shape:
        raise ShapeError(f"{what}: '...' is not allowed here, got {shape}")
    return shape


# ---- kernels ----------------------------------------------------------------


def _index(nblocks, block, stride, device):
    """Per grid axis, the positions ``stride * i + k`` read by block i at offset k."""
    return tuple(
        (torch.arange(n, device=device)[:, None] * s + torch.arange(b, device=device)).reshape(-1)
        for n, b, s in zip(nblocks, block, stride)
    )


def _extract(x, stride, nblocks, block):
    """(..., *grid) -> (..., *nblocks, *block): one index_select per grid axis."""
    d = len(block)
    for i, idx in enumerate(_index(nblocks, block, stride, x.device)):
        x = x.index_select(x.ndim - d + i, idx)
    interleaved = tuple(v for nb in zip(nblocks, block) for v in nb)
    x = x.reshape(x.shape[: x.ndim - d] + interleaved)
    return x.movedim(_deinterleave_src(d), tuple(range(-2 * d, 0)))


def _overlap_add(y, stride, grid, nblocks, block):
    """The adjoint of :func:`_extract`: (..., *nblocks, *block) -> (..., *grid)."""
    d = len(block)
    y = y.movedim(tuple(range(-2 * d, 0)), _deinterleave_src(d))
    y = y.reshape(y.shape[: y.ndim - 2 * d] + tuple(n * b for n, b in zip(nblocks, block)))
    for i, idx in enumerate(_index(nblocks, block, stride, y.device)):
        axis = y.ndim - d + i
        shape = y.shape[:axis] + (grid[i],) + y.shape[axis + 1:]
        y = y.new_zeros(shape).index_add(axis, idx, y)
    return y


def _deinterleave_src(d):
    # Axis order (n1, b1, n2, b2, ...) -> (n1, n2, ..., b1, b2, ...).
    return tuple(2 * i - 2 * d for i in range(d)) + tuple(2 * i + 1 - 2 * d for i in range(d))


def _to_blocks(op, x):
    y = _extract(x, op._stride, op._nblocks, op._block)
    mask = op.mask
    if mask is None:
        return y
    if mask.dtype == torch.bool:
        return y.flatten(-len(op._block)).index_select(-1, op._select)
    return y * mask


def _to_array(op, y):
    block, mask = op._block, op.mask
    if mask is not None and mask.dtype == torch.bool:
        full = y.new_zeros(y.shape[:-1] + (mask.numel(),)).index_add(-1, op._select, y)
        y = full.unflatten(-1, block)
    elif mask is not None:
        y = y * mask.conj()
    return _overlap_add(y, op._stride, op._grid, op._nblocks, block)


def _overlap_weight(op):
    """Σ over blocks of |mask|² at each grid point: the diagonal of AᴴA (for
    an operator with a mask, on the mask's device)."""
    mask = op.mask
    # A boolean mask's weight counts blocks: an integer, so the normal keeps
    # the input's dtype (a float one would promote it).
    if mask.dtype == torch.bool:
        # From the selection A and Aᴴ use, not from the mask it was made of
        # (integer counts: they never raise the precision of the data).
        w = torch.zeros(math.prod(op._block), dtype=torch.int64, device=op._select.device)
        w = w.index_fill(0, op._select, 1).unflatten(0, op._block)
    else:
        w = mask.abs().square() if mask.is_complex() else mask.square()
    w = w.expand(op._nblocks + op._block)
    return _overlap_add(w, op._stride, op._grid, op._nblocks, op._block)


class _BlocksBase(Linop):
    grid_size: tuple = static(converter=_int_or_ints)
    block_size: tuple = static(converter=_int_or_ints)
    stride: tuple = static(converter=_int_or_ints)
    mask: torch.Tensor | None = None
    batch_shape: tuple = static(default=None, converter=as_shape)
    # the geometry, from the arguments: sizes per grid axis, dim names, and
    # the selected block entries of a boolean mask (None without one)
    ishape: tuple = derived()
    oshape: tuple = derived()
    _grid: tuple = derived()
    _block: tuple = derived()
    _stride: tuple = derived()
    _array: tuple = derived()
    _blocks: tuple = derived()
    _sizes: tuple = derived()
    _nblocks: tuple = derived()
    _select: torch.Tensor = derived(static=False)

    def size(self, dim):
        return dict(self._sizes).get(dim)

    def tile(self, slices):
        # Batch dims split freely: nothing in the operator depends on them.
        check_slices(self, slices, self._array + self._blocks,
                     "grid and block dims cannot be split")
        return self

    def split_kind(self, dim):
        return fixed_kind(self, dim, self._array + self._blocks)

    def split_refusal(self, dim):
        return "maps it between the array and its blocks"


class ArrayToBlocks(_BlocksBase):
    """Extract (possibly overlapping) blocks from an n-D array, n = 1, 2, 3.

    Input ``batch_shape + array_shape`` with grid ``grid_size``; output
    ``batch_shape + blocks_shape`` laid out as ``(*nblocks, *block_size)``,
    where ``nblocks[i] = (grid_size[i] - block_size[i]) // stride[i] + 1``
    (trailing grid points that no whole block reaches are dropped).
    ``mask`` (shape ``block_size``) is optional: a boolean mask keeps only
    the selected elements of each block, so the output is
    ``(*nblocks, n_selected)`` (torchlinops' layout; the selection is derived
    from the mask once, and the operator, its adjoint and its normal all use
    it); a float or complex mask multiplies each block. Default names: ``array_shape`` ``Nx Ny Nz``,
    ``blocks_shape`` ``Bx By Bz`` then ``Kx Ky Kz`` (``K`` with a boolean mask).

    The adjoint is :class:`BlocksToArray` (overlap-add). With a mask the
    normal is a :class:`Diagonal` over the grid holding, at each point, the
    sum of |mask|² over the blocks covering it (for a boolean mask the
    overlap count, an integer weight that keeps the input's dtype); without
    a mask the operator holds no tensor and its normal is the operator
    followed by its adjoint, so that it runs on any device.

    >>> import torch, funclinop as fl
    >>> A = fl.ArrayToBlocks((5,), (3,), (2,), array_shape=("N",), blocks_shape=("B", "K"))
    >>> A(torch.arange(5.0))
    tensor([[0., 1., 2.],
            [2., 3., 4.]])
    >>> A.N(torch.ones(5))
    tensor([1., 1., 2., 1., 1.])
    """

    array_shape: tuple = static(default=None, converter=as_optional_shape)
    blocks_shape: tuple = static(default=None, converter=as_optional_shape)

    def _precompute(self):
        return _geometry(self, "ArrayToBlocks")

    def apply(self, x):
        return _to_blocks(self, x)

    def apply_adjoint(self, y):
        return _to_array(self, y)

    def adjoint(self):
        return _swap(self, BlocksToArray)

    def normal(self):
        from .diagonal import Diagonal

        if self.mask is None:  # no leaf: a weight tensor would pin the operator to one device
            return super().normal()
        return Diagonal(_overlap_weight(self), self.ishape)


class BlocksToArray(_BlocksBase):
    """Sum blocks back into an n-D array (overlap-add), the adjoint of :class:`ArrayToBlocks`.

    Input ``batch_shape + blocks_shape`` laid out as ``(*nblocks,
    *block_size)`` (``(*nblocks, n_selected)`` with a boolean mask); output
    ``batch_shape + array_shape`` with grid ``grid_size``. Overlapping block
    entries add up; a float mask multiplies each block by ``conj(mask)``
    first. Arguments and defaults as for :class:`ArrayToBlocks` (note the
    order: ``blocks_shape`` before ``array_shape``).

    >>> import torch, funclinop as fl
    >>> A = fl.BlocksToArray((5,), (3,), (2,), blocks_shape=("B", "K"), array_shape=("N",))
    >>> A(torch.ones(2, 3))
    tensor([1., 1., 2., 1., 1.])
    """

    blocks_shape: tuple = static(default=None, converter=as_optional_shape)
    array_shape: tuple = static(default=None, converter=as_optional_shape)

    def _precompute(self):
        geometry = _geometry(self, "BlocksToArray")
        geometry["ishape"], geometry["oshape"] = geometry["oshape"], geometry["ishape"]
        return geometry

    def apply(self, y):
        return _to_array(self, y)

    def apply_adjoint(self, x):
        return _to_blocks(self, x)

    def adjoint(self):
        return _swap(self, ArrayToBlocks)


def _swap(op, cls):
    """The adjoint: the same fields and geometry as ``cls``, shapes swapped, made
    without re-validating (validation counts the mask's selected elements, a
    data-dependent step that ``torch.compile`` cannot trace)."""
    return _assemble(cls, dict(op.__dict__, ishape=op.oshape, oshape=op.ishape), _seal)
