"""Factories for the core operators."""

import torch

from ... import ops
from ...dims import fresh
from ...linop import allow_loading
from ..registry import pick, randn, register_factory


@register_factory("Dense", min_size=0)
def dense(gen, dtype, dims, avoid):
    names = list(dims)
    k = pick(gen, len(names))
    c = names[k]  # contracted into a new dim M
    m = fresh("M", set(avoid) | set(dims))
    batch = [d for d in names if d != c][:1]  # elementwise (shared) weight dim
    wshape = tuple(batch) + (m, c)
    weight = randn(gen, tuple(dims[d] if d in dims else 3 for d in wshape), dtype)
    oshape = tuple(m if d == c else d for d in names)
    return ops.Dense(weight, wshape, tuple(names), oshape)


@register_factory("Dense.expand", min_size=0)
def dense_expand(gen, dtype, dims, avoid):
    c = fresh("C", set(avoid) | set(dims))
    names = tuple(dims)
    weight = randn(gen, (2,) + tuple(dims.values()), dtype)
    return ops.Dense(weight, (c,) + names, names, (c,) + names)


@register_factory("Diagonal", min_size=0)
def diagonal(gen, dtype, dims, avoid):
    names = tuple(dims)
    trailing = names[pick(gen, len(names)):]
    return ops.Diagonal(randn(gen, tuple(dims[d] for d in trailing), dtype), names)


@register_factory("Scalar", min_size=0)
def scalar(gen, dtype, dims, avoid):
    return ops.Scalar(randn(gen, (), dtype), tuple(dims))


@register_factory("Identity", min_size=0)
def identity(gen, dtype, dims, avoid):
    return ops.Identity(tuple(dims))


@register_factory("Zero", min_size=0)
def zero(gen, dtype, dims, avoid):
    return ops.Zero(tuple(dims))


@register_factory("FunctionLinop", min_size=0)
def function(gen, dtype, dims, avoid):
    names = tuple(dims)
    w = randn(gen, tuple(dims.values()), dtype)
    # flip + multiply: linear, with a vjp adjoint
    return ops.FunctionLinop(_flip_scale, w, ishape=names, oshape=names, sizes=dict(dims))


def _flip_scale(w, x):
    return torch.flip(x, (-1,)) * w


@register_factory("FunctionLinop.adjoint_fn", min_size=0)
def function_adj(gen, dtype, dims, avoid):
    names = tuple(dims)
    w = randn(gen, tuple(dims.values()), dtype)
    return ops.FunctionLinop(
        _scale_roll, w, adjoint_fn=_scale_roll_adjoint, ishape=names, oshape=names,
    )


def _scale_roll(w, x):
    return torch.roll(x * w, 1, -1)


def _scale_roll_adjoint(w, y):
    return torch.roll(y, -1, -1) * w.conj()


# A FunctionLinop holds its functions: torch.load must be allowed to find them.
allow_loading(_flip_scale, _scale_roll, _scale_roll_adjoint)


def _renamed(gen, dims, avoid):
    """``dims`` with a random non-empty subset given fresh names (same sizes, same order)."""
    names = tuple(dims)
    k = pick(gen, len(names))
    taken = set(avoid) | set(dims)
    out = list(names)
    for i in range(len(names)):
        if i == k or pick(gen, 2):
            out[i] = fresh(names[i], taken)
            taken.add(out[i])
    return names, tuple(out)


@register_factory("Identity.rename", min_size=0)
def identity_rename(gen, dtype, dims, avoid):
    return ops.Identity(*_renamed(gen, dims, avoid))


@register_factory("Zero.rename", min_size=0)
def zero_rename(gen, dtype, dims, avoid):
    return ops.Zero(*_renamed(gen, dims, avoid))


@register_factory("Scalar.python", min_size=0)
def scalar_python(gen, dtype, dims, avoid):
    c = float(randn(gen, (), torch.float64))
    if dtype.is_complex and pick(gen, 2):
        c = complex(c, float(randn(gen, (), torch.float64)))
    return ops.Scalar(c, tuple(dims))


@register_factory("Dense.broadcast", min_size=0)
def dense_broadcast(gen, dtype, dims, avoid):
    """A weight with a size-1 axis over one input dim, left to broadcasting."""
    names = tuple(dims)
    b = names[pick(gen, len(names))]
    m = fresh("M", set(avoid) | set(dims))
    c = names[-1] if names[-1] != b else None
    wshape = (b, m) + ((c,) if c else ())
    weight = randn(gen, (1, 2) + ((dims[c],) if c else ()), dtype)
    oshape = tuple(d for d in names if d != c) + (m,)
    return ops.Dense(weight, wshape, names, oshape, broadcast_dims=(b,))


@register_factory("Diagonal.broadcast", min_size=0)
def diagonal_broadcast(gen, dtype, dims, avoid):
    names = tuple(dims)
    b = names[pick(gen, len(names))]
    shape = tuple(1 if d == b else dims[d] for d in names)
    return ops.Diagonal(randn(gen, shape, dtype), names, broadcast_dims=(b,))
