"""Factories for FFT, Pad, Crop, PadDim, Truncate and Sampling."""

import torch

from ... import ops
from ...dims import fresh, fresh_names
from ..registry import NotApplicable, register_factory

COMPLEX = (torch.complex64, torch.complex128)


def _pick(gen, n):
    return int(torch.randint(n, (1,), generator=gen))


def _split(gen, dims):
    """(batch names, grid names): a random non-empty trailing run of dims is the grid."""
    names = tuple(dims)
    k = 1 + _pick(gen, len(names))
    return names[:-k], names[-k:]


@register_factory("FFT", dtypes=COMPLEX)
def fft(gen, dtype, dims, avoid):
    batch, grid = _split(gen, dims)
    kgrid = grid if _pick(gen, 2) else fresh_names(grid, set(avoid) | set(dims))
    return ops.FFT(len(grid), batch, (grid, kgrid), centered=bool(_pick(gen, 2)))


@register_factory("Pad", min_size=0)
def pad(gen, dtype, dims, avoid):
    batch, grid = _split(gen, dims)
    size = tuple(dims[d] for d in grid)
    padded = tuple(n + _pick(gen, 4) for n in size)
    out = fresh_names(grid, set(avoid) | set(dims))
    return ops.Pad(padded, size, grid, out, batch)


@register_factory("Crop")
def crop(gen, dtype, dims, avoid):
    batch, grid = _split(gen, dims)
    size = tuple(dims[d] for d in grid)
    cropped = tuple(1 + _pick(gen, n) for n in size)
    out = fresh_names(grid, set(avoid) | set(dims))
    return ops.Crop(cropped, size, grid, out, batch)


def _one_dim(gen, dims, avoid):
    names = tuple(dims)
    k = _pick(gen, len(names))
    new = fresh(names[k], set(avoid) | set(dims))
    return k, names, names[:k] + (new,) + names[k + 1:]


@register_factory("Truncate")
def truncate(gen, dtype, dims, avoid):
    k, ishape, oshape = _one_dim(gen, dims, avoid)
    n = dims[ishape[k]]
    return ops.Truncate(k - len(ishape) * _pick(gen, 2), n, 1 + _pick(gen, n), ishape, oshape)


@register_factory("PadDim", min_size=0)
def pad_dim(gen, dtype, dims, avoid):
    k, ishape, oshape = _one_dim(gen, dims, avoid)
    n = dims[ishape[k]]
    return ops.PadDim(k, n, n + _pick(gen, 4), ishape, oshape)


@register_factory("Sampling")
def sampling(gen, dtype, dims, avoid):
    batch, grid = _split(gen, dims)
    size = tuple(dims[d] for d in grid)
    samples = tuple(1 + _pick(gen, 5) for _ in range(1 + _pick(gen, 2)))
    # Few samples on a small grid: repeated locations are common.
    idx = tuple(torch.randint(n, samples, generator=gen) for n in size)
    out = fresh_names(("M",) * len(samples), set(avoid) | set(dims))
    return ops.Sampling(idx, size, out, grid, batch)


@register_factory("Sampling.from_mask")
def sampling_mask(gen, dtype, dims, avoid):
    batch, grid = _split(gen, dims)
    size = tuple(dims[d] for d in grid)
    mask = torch.rand(size, generator=gen) < 0.5
    if not mask.any():
        raise NotApplicable("empty mask")
    out = fresh_names(("M",), set(avoid) | set(dims))
    return ops.Sampling.from_mask(mask, size, out, grid, batch)
