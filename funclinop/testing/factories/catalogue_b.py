"""Factories for Rearrange, SumReduce, Repeat, ArrayToBlocks, BlocksToArray, Convolution, Correlation."""

import torch

from ... import ops
from ...dims import fresh, fresh_names
from ..registry import NotApplicable, randn, register_factory


def _pick(gen, n):
    return int(torch.randint(n, (1,), generator=gen))


def _perm(gen, n):
    return [int(i) for i in torch.randperm(n, generator=gen)]


def _real(dtype):
    return torch.empty((), dtype=dtype).real.dtype


# ---- einops ---------------------------------------------------------------


@register_factory("Rearrange")
def rearrange(gen, dtype, dims, avoid):
    names = tuple(dims)
    axes = [f"a{i}" for i in range(len(names))]
    order = _perm(gen, len(names))
    out_axes = [axes[i] for i in order]
    groups = [[a] for a in out_axes]
    lengths = {}
    if len(groups) > 1 and _pick(gen, 2):  # merge two neighbours into one composite axis
        k = _pick(gen, len(groups) - 1)
        groups[k:k + 2] = [groups[k] + groups[k + 1]]
        lengths[groups[k][0]] = dims[names[axes.index(groups[k][0])]]
    if _pick(gen, 3) == 0:  # a unit axis
        groups.insert(_pick(gen, len(groups) + 1), [])
    opattern = " ".join(f"({' '.join(g)})" if len(g) != 1 else g[0] for g in groups)
    onames = list(fresh_names(["R" + "".join(g) if g else "U" for g in groups], set(avoid) | set(dims)))
    for k, g in enumerate(groups):  # a single axis may keep its input name (a splittable dim)
        if len(g) == 1 and _pick(gen, 2):
            onames[k] = names[axes.index(g[0])]
    return ops.Rearrange(" ".join(axes), opattern, names, onames, lengths)


@register_factory("SumReduce")
def sum_reduce(gen, dtype, dims, avoid):
    names = tuple(dims)
    if len(names) < 2:
        raise NotApplicable("SumReduce needs a dim left over")
    r = names[_pick(gen, len(names))]
    kept = [d for d in names if d != r]
    kept = [kept[i] for i in _perm(gen, len(kept))]
    return ops.SumReduce(names, tuple(kept), sizes={r: dims[r]})


@register_factory("Repeat", min_size=0)
def repeat(gen, dtype, dims, avoid):
    names = list(dims)
    new = fresh("R", set(avoid) | set(dims))
    onames = [names[i] for i in _perm(gen, len(names))]
    onames.insert(_pick(gen, len(onames) + 1), new)
    if _pick(gen, 4) == 0:
        return ops.Repeat({}, tuple(names), tuple(onames), broadcast_dims=(new,))
    return ops.Repeat({new: 1 + _pick(gen, 3)}, tuple(names), tuple(onames))


# ---- blocks -----------------------------------------------------------------


def _mask(gen, block, dtype, kind):
    if kind == 1:
        m = torch.rand(block, generator=gen) > 0.5
        m.view(-1)[_pick(gen, m.numel())] = True
        return m
    if kind == 2:
        return randn(gen, block, _real(dtype))
    return None


@register_factory("ArrayToBlocks")
def array_to_blocks(gen, dtype, dims, avoid):
    names = tuple(dims)
    k = 1 + _pick(gen, len(names))
    batch, array = names[:-k], names[-k:]
    grid = tuple(dims[d] for d in array)
    block = tuple(1 + _pick(gen, g) for g in grid)
    stride = tuple(1 + _pick(gen, 3) for _ in grid)
    mask = _mask(gen, block, dtype, _pick(gen, 3))
    inner = ["K"] if mask is not None and mask.dtype == torch.bool else [f"K{d}" for d in array]
    blocks = fresh_names([f"B{d}" for d in array] + inner, set(avoid) | set(dims))
    return ops.ArrayToBlocks(grid, block, stride, mask, batch, array, blocks)


@register_factory("BlocksToArray")
def blocks_to_array(gen, dtype, dims, avoid):
    names = tuple(dims)
    if len(names) < 2:
        raise NotApplicable("blocks need a block-count dim and a block dim")
    boolean = _pick(gen, 2) == 1
    ndim = 1 + _pick(gen, len(names) - 1 if boolean else len(names) // 2)
    nb = ndim + (1 if boolean else ndim)
    batch, blocks = names[:-nb], names[-nb:]
    nblocks = tuple(dims[d] for d in blocks[:ndim])
    stride = tuple(1 + _pick(gen, 3) for _ in range(ndim))
    if boolean:
        nsel = dims[blocks[-1]]
        block = [1] * ndim
        while _prod(block) < nsel:
            block[_pick(gen, ndim)] += 1
        block = tuple(block)
        flat = torch.zeros(_prod(block), dtype=torch.bool)
        flat[torch.randperm(flat.numel(), generator=gen)[:nsel]] = True
        mask = flat.reshape(block)
    else:
        block = tuple(dims[d] for d in blocks[ndim:])
        mask = _mask(gen, block, dtype, 2 * _pick(gen, 2))
    grid = tuple((n - 1) * s + b + _pick(gen, 2) for n, s, b in zip(nblocks, stride, block))
    # A grid point past the last block would make the count smaller; keep the count.
    grid = tuple(g if (g - b) // s + 1 == n else g - 1 for g, b, s, n in zip(grid, block, stride, nblocks))
    array = fresh_names([f"N{i}" for i in range(ndim)], set(avoid) | set(dims))
    return ops.BlocksToArray(grid, block, stride, mask, batch, blocks, array)


def _prod(t):
    out = 1
    for v in t:
        out *= v
    return out


# ---- convolution ------------------------------------------------------------


def _filter(cls, gen, dtype, dims, avoid):
    names = tuple(dims)
    ndim = 1 + _pick(gen, len(names))
    k = ndim + _pick(gen, len(names) - ndim + 1)  # grid dims (>= kernel dims)
    batch, grid = names[:-k], names[-k:]
    kernel = randn(gen, tuple(1 + _pick(gen, 4) for _ in range(ndim)), dtype)
    out = fresh_names(grid, set(avoid) | set(dims))
    mode = ("zeros", "circular")[_pick(gen, 2)]
    return cls(kernel, batch, grid, out, padding_mode=mode)


@register_factory("Convolution")
def convolution(gen, dtype, dims, avoid):
    return _filter(ops.Convolution, gen, dtype, dims, avoid)


@register_factory("Correlation")
def correlation(gen, dtype, dims, avoid):
    return _filter(ops.Correlation, gen, dtype, dims, avoid)
