"""Factories for Sampling."""

import torch

from ... import ops
from ...dims import fresh_names
from ..registry import NotApplicable, pick, register_factory, trailing_grid


@register_factory("Sampling")
def sampling(gen, dtype, dims, avoid):
    batch, grid = trailing_grid(gen, dims)
    size = tuple(dims[d] for d in grid)
    samples = tuple(1 + pick(gen, 5) for _ in range(1 + pick(gen, 2)))
    # Few samples on a small grid: repeated locations are common.
    idx = tuple(torch.randint(n, samples, generator=gen) for n in size)
    out = fresh_names(("M",) * len(samples), set(avoid) | set(dims))
    return ops.Sampling(idx, size, out, grid, batch)


@register_factory("Sampling.from_mask")
def sampling_mask(gen, dtype, dims, avoid):
    batch, grid = trailing_grid(gen, dims)
    size = tuple(dims[d] for d in grid)
    mask = torch.rand(size, generator=gen) < 0.5
    if not mask.any():
        raise NotApplicable("empty mask")
    out = fresh_names(("M",), set(avoid) | set(dims))
    return ops.Sampling.from_mask(mask, size, out, grid, batch)
