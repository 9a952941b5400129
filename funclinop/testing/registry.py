"""A registry of operator factories, so every property test covers every type.

A factory is ``make(gen, dtype, dims, avoid) -> Linop``: given a
``torch.Generator``, a dtype, an ordered ``{dim: size}`` dict and a set of dim
names already in use, it returns a random operator of its type whose
``ishape`` is exactly ``tuple(dims)``, whose sizes match, and whose new
output dims avoid the names in ``avoid`` (use ``funclinop.dims.fresh``).
It raises :class:`NotApplicable` when it cannot act on those dims. Register
one with :func:`register_factory`; the hypothesis strategies draw from all of
them and grow random trees out of them.
"""

from dataclasses import dataclass

import torch

__all__ = ["NotApplicable", "Factory", "register_factory", "FACTORIES", "DTYPES", "randn", "pick", "perm", "trailing_grid", "input_for", "output_dims"]

DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)


class NotApplicable(Exception):
    """Raised by a factory that cannot build an operator for the given dims."""


@dataclass(frozen=True)
class Factory:
    name: str
    make: object
    dtypes: tuple = DTYPES
    min_size: int = 1  # smallest dim size the factory can handle
    max_dims: int = 3  # most input dims it can take


FACTORIES: dict[str, Factory] = {}


def register_factory(name, *, dtypes=DTYPES, min_size=1, max_dims=3):
    """Decorator: register ``make(gen, dtype, dims, avoid)`` under ``name``."""

    def deco(make):
        FACTORIES[name] = Factory(name, make, tuple(dtypes), min_size, max_dims)
        return make

    return deco


def randn(gen, shape, dtype):
    """A standard normal tensor drawn from ``gen`` (complex: both parts)."""
    if dtype.is_complex:
        real = torch.empty((), dtype=dtype).real.dtype
        re = torch.randn(shape, generator=gen, dtype=real)
        im = torch.randn(shape, generator=gen, dtype=real)
        return torch.complex(re, im) / 2**0.5
    return torch.randn(shape, generator=gen, dtype=dtype)


def pick(gen, n):
    """A random int in ``[0, n)`` drawn from ``gen``."""
    return int(torch.randint(n, (1,), generator=gen))


def perm(gen, n):
    """A random permutation of ``range(n)`` drawn from ``gen``."""
    return [int(i) for i in torch.randperm(n, generator=gen)]


def trailing_grid(gen, dims):
    """``(batch names, grid names)``: a random non-empty trailing run of ``dims`` is the grid."""
    names = tuple(dims)
    k = 1 + pick(gen, len(names))
    return names[:-k], names[-k:]


def input_for(gen, dims, dtype, batch=()):
    """A random input with named sizes ``dims`` and leading ``batch`` dims."""
    return randn(gen, tuple(batch) + tuple(dims.values()), dtype)


def output_dims(op, dims, dtype=torch.float64):
    """``{dim: size}`` of ``op``'s output for an input with sizes ``dims``."""
    from ..dims import named

    x = torch.zeros(tuple(dims.values()), dtype=dtype)
    y = op(x)
    names = named(op.oshape)
    return dict(zip(names, y.shape[y.ndim - len(names):]))
