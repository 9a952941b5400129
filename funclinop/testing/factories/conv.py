"""Factories for Convolution and Correlation."""

from ... import ops
from ...dims import fresh_names
from ..registry import pick, randn, register_factory


def _filter(cls, gen, dtype, dims, avoid):
    names = tuple(dims)
    ndim = 1 + pick(gen, len(names))
    k = ndim + pick(gen, len(names) - ndim + 1)  # grid dims (>= kernel dims)
    batch, grid = names[:-k], names[-k:]
    kernel = randn(gen, tuple(1 + pick(gen, 4) for _ in range(ndim)), dtype)
    out = fresh_names(grid, set(avoid) | set(dims))
    mode = ("zeros", "circular")[pick(gen, 2)]
    return cls(kernel, batch, grid, out, padding_mode=mode)


@register_factory("Convolution")
def convolution(gen, dtype, dims, avoid):
    return _filter(ops.Convolution, gen, dtype, dims, avoid)


@register_factory("Correlation")
def correlation(gen, dtype, dims, avoid):
    return _filter(ops.Correlation, gen, dtype, dims, avoid)
