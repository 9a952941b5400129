"""Factory for FiNUFFT, the finufft backend of the NUFFT (registered only
where finufft is installed)."""

import importlib.util

import torch

from ...dims import fresh_names
from ..registry import register_factory


def _pick(gen, n):
    return int(torch.randint(n, (1,), generator=gen))


def finufft(gen, dtype, dims, avoid):
    """Grid: a trailing run of 1-3 dims; sometimes the last batch dim holds one
    trajectory per entry; one or two sample dims. The locations' dtype is the
    real dtype of ``dtype``: a real input becomes complex, as with an FFT."""
    from ...ops.finufft import FiNUFFT

    names = tuple(dims)
    k = 1 + _pick(gen, min(3, len(names)))
    batch, grid = names[:-k], names[-k:]
    frames = batch[len(batch) - 1:] if batch and _pick(gen, 2) else ()
    samples = tuple(1 + _pick(gen, 5) for _ in range(1 + _pick(gen, 2)))
    out = fresh_names(("M",) * len(samples), set(avoid) | set(dims))
    size = torch.tensor([dims[d] for d in grid], dtype=torch.float64)
    shape = tuple(dims[d] for d in frames) + samples + (k,)
    locs = (torch.rand(shape, generator=gen, dtype=torch.float64) - 0.5) * size
    real = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)
    return FiNUFFT(locs.to(real), tuple(dims[d] for d in grid), ishape=names, oshape=batch + out)


if importlib.util.find_spec("finufft") is not None:
    register_factory("FiNUFFT")(finufft)
