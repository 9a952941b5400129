"""Factories for ArrayToBlocks and BlocksToArray."""

import math

import torch

from ... import ops
from ...dims import fresh_names
from ..registry import NotApplicable, pick, randn, register_factory


def _mask(gen, block, dtype, kind):
    if kind == 1:
        m = torch.rand(block, generator=gen) > 0.5
        m.view(-1)[pick(gen, m.numel())] = True
        return m
    if kind == 2:
        return randn(gen, block, dtype.to_real())
    return None


@register_factory("ArrayToBlocks")
def array_to_blocks(gen, dtype, dims, avoid):
    names = tuple(dims)
    k = 1 + pick(gen, len(names))
    batch, array = names[:-k], names[-k:]
    grid = tuple(dims[d] for d in array)
    block = tuple(1 + pick(gen, g) for g in grid)
    stride = tuple(1 + pick(gen, 3) for _ in grid)
    mask = _mask(gen, block, dtype, pick(gen, 3))
    inner = ["K"] if mask is not None and mask.dtype == torch.bool else [f"K{d}" for d in array]
    blocks = fresh_names([f"B{d}" for d in array] + inner, set(avoid) | set(dims))
    return ops.ArrayToBlocks(grid, block, stride, mask, batch, array, blocks)


@register_factory("BlocksToArray")
def blocks_to_array(gen, dtype, dims, avoid):
    names = tuple(dims)
    if len(names) < 2:
        raise NotApplicable("blocks need a block-count dim and a block dim")
    boolean = pick(gen, 2) == 1
    ndim = 1 + pick(gen, len(names) - 1 if boolean else len(names) // 2)
    nb = ndim + (1 if boolean else ndim)
    batch, blocks = names[:-nb], names[-nb:]
    nblocks = tuple(dims[d] for d in blocks[:ndim])
    stride = tuple(1 + pick(gen, 3) for _ in range(ndim))
    if boolean:
        nsel = dims[blocks[-1]]
        block = [1] * ndim
        while math.prod(block) < nsel:
            block[pick(gen, ndim)] += 1
        block = tuple(block)
        flat = torch.zeros(math.prod(block), dtype=torch.bool)
        flat[torch.randperm(flat.numel(), generator=gen)[:nsel]] = True
        mask = flat.reshape(block)
    else:
        block = tuple(dims[d] for d in blocks[ndim:])
        mask = _mask(gen, block, dtype, 2 * pick(gen, 2))
    grid = tuple((n - 1) * s + b + pick(gen, 2) for n, s, b in zip(nblocks, stride, block))
    # A grid point past the last block would make the count smaller; keep the count.
    grid = tuple(g if (g - b) // s + 1 == n else g - 1 for g, b, s, n in zip(grid, block, stride, nblocks))
    array = fresh_names([f"N{i}" for i in range(ndim)], set(avoid) | set(dims))
    return ops.BlocksToArray(grid, block, stride, mask, batch, blocks, array)
