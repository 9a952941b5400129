"""Factories for FFT."""

import torch

from ... import ops
from ...dims import fresh_names
from ..registry import pick, register_factory, trailing_grid

COMPLEX = (torch.complex64, torch.complex128)


@register_factory("FFT", dtypes=COMPLEX)
def fft(gen, dtype, dims, avoid):
    batch, grid = trailing_grid(gen, dims)
    kgrid = grid if pick(gen, 2) else fresh_names(grid, set(avoid) | set(dims))
    return ops.FFT(len(grid), batch, (grid, kgrid), centered=bool(pick(gen, 2)))
