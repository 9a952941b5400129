"""Factories for Interpolate and NUFFT: 1-D to 3-D grids of any size, batch dims,
one or two sample dims, per-frame locations, both kernels, and the Toeplitz normal.

A NUFFT built with ``toeplitz=True`` has a normal that is the exact NUDFT's
(more accurate than ``A.H ∘ A`` of the approximation it applies), so the
registry holds that normal as an operator of its own ("NUFFT.toeplitz_normal")
rather than the NUFFT holding it, whose ``A.N == A.H ∘ A`` check it would fail.
"""

import torch

from ... import ops
from ...dims import fresh_names
from ..registry import NotApplicable, register_factory

COMPLEX = (torch.complex64, torch.complex128)


def _pick(gen, n):
    return int(torch.randint(n, (1,), generator=gen))


def _real(dtype):
    return torch.empty((), dtype=dtype).real.dtype


def _layout(gen, dims, avoid):
    """(batch dims, grid dims, frame count, sample names, sample sizes) for a random layout."""
    names = tuple(dims)
    k = 1 + _pick(gen, min(3, len(names)))
    batch, grid = names[:-k], names[-k:]
    frames = _pick(gen, 2) if batch else 0  # the last batch dim: one set of locations per entry
    nsamples = 1 + _pick(gen, 2)
    samples = fresh_names(["K"] * nsamples, set(avoid) | set(dims))
    sizes = tuple(1 + _pick(gen, 5) for _ in samples)
    return batch, grid, frames, samples, sizes


def _locs(gen, dims, batch, grid, frames, sizes, dtype, low, high):
    shape = tuple(dims[d] for d in batch[len(batch) - frames:]) + sizes + (len(grid),)
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    lo = torch.tensor([low(dims[d]) for d in grid], dtype=torch.float64)
    hi = torch.tensor([high(dims[d]) for d in grid], dtype=torch.float64)
    return (lo + u * (hi - lo)).to(_real(dtype))


@register_factory("Interpolate")
def interpolate(gen, dtype, dims, avoid):
    batch, grid, frames, samples, sizes = _layout(gen, dims, avoid)
    locs = _locs(gen, dims, batch, grid, frames, sizes, dtype, lambda n: -1.0, lambda n: n + 1.0)
    kernel = ("kaiser_bessel", "spline")[_pick(gen, 2)]
    mode = ("circular", "zero")[_pick(gen, 2)]
    size = tuple(dims[d] for d in grid)
    return ops.Interpolate(locs, size, ishape=tuple(dims), oshape=batch + samples, width=1 + _pick(gen, 4),
                           kernel=kernel, pad_mode=mode)


def _nufft(gen, dtype, dims, avoid, toeplitz):
    batch, grid, frames, samples, sizes = _layout(gen, dims, avoid)
    if any(dims[d] < 1 for d in grid):
        raise NotApplicable("NUFFT needs a non-empty grid")
    # centred locations in [-N/2, N/2), kept off the upper end by rounding
    locs = _locs(gen, dims, batch, grid, frames, sizes, dtype, lambda n: -n / 2, lambda n: n / 2 * 0.999)
    size = tuple(dims[d] for d in grid)
    kernel = ("kaiser_bessel", "spline")[_pick(gen, 3) // 2]
    # the tent's transform vanishes at 2 / width: keep it outside the image
    width = 2 + _pick(gen, 2 if kernel == "spline" else 4)
    return ops.NUFFT(locs, size, ishape=tuple(dims), oshape=batch + samples, kernel=kernel,
                     oversamp=(1.25, 2.0)[_pick(gen, 2)], width=width, toeplitz=toeplitz)


@register_factory("NUFFT", dtypes=COMPLEX)
def nufft(gen, dtype, dims, avoid):
    return _nufft(gen, dtype, dims, avoid, toeplitz=False)


@register_factory("NUFFT.toeplitz_normal", dtypes=COMPLEX)
def toeplitz_normal(gen, dtype, dims, avoid):
    return _nufft(gen, dtype, dims, avoid, toeplitz=True).normal()
