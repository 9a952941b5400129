"""Factories for Pad, Crop, PadDim and Truncate."""

from ... import ops
from ...dims import fresh, fresh_names
from ..registry import pick, register_factory, trailing_grid


@register_factory("Pad", min_size=0)
def pad(gen, dtype, dims, avoid):
    batch, grid = trailing_grid(gen, dims)
    size = tuple(dims[d] for d in grid)
    padded = tuple(n + pick(gen, 4) for n in size)
    out = fresh_names(grid, set(avoid) | set(dims))
    return ops.Pad(padded, size, grid, out, batch)


@register_factory("Crop")
def crop(gen, dtype, dims, avoid):
    batch, grid = trailing_grid(gen, dims)
    size = tuple(dims[d] for d in grid)
    cropped = tuple(1 + pick(gen, n) for n in size)
    out = fresh_names(grid, set(avoid) | set(dims))
    return ops.Crop(cropped, size, grid, out, batch)


def _one_dim(gen, dims, avoid):
    names = tuple(dims)
    k = pick(gen, len(names))
    new = fresh(names[k], set(avoid) | set(dims))
    return k, names, names[:k] + (new,) + names[k + 1:]


@register_factory("Truncate")
def truncate(gen, dtype, dims, avoid):
    k, ishape, oshape = _one_dim(gen, dims, avoid)
    n = dims[ishape[k]]
    return ops.Truncate(k - len(ishape) * pick(gen, 2), n, 1 + pick(gen, n), ishape, oshape)


@register_factory("PadDim", min_size=0)
def pad_dim(gen, dtype, dims, avoid):
    k, ishape, oshape = _one_dim(gen, dims, avoid)
    n = dims[ishape[k]]
    return ops.PadDim(k, n, n + pick(gen, 4), ishape, oshape)
