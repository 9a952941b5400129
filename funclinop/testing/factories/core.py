"""Factories for the core operators."""

import torch

from ... import ops
from ...dims import fresh
from ...linop import allow_loading
from ..registry import randn, register_factory


def _pick(gen, n):
    return int(torch.randint(n, (1,), generator=gen))


@register_factory("Dense")
def dense(gen, dtype, dims, avoid):
    names = list(dims)
    k = _pick(gen, len(names))
    c = names[k]  # contracted into a new dim M
    m = fresh("M", set(avoid) | set(dims))
    batch = [d for d in names if d != c][:1]  # elementwise (shared) weight dim
    wshape = tuple(batch) + (m, c)
    weight = randn(gen, tuple(dims[d] if d in dims else 3 for d in wshape), dtype)
    oshape = tuple(m if d == c else d for d in names)
    return ops.Dense(weight, wshape, tuple(names), oshape)


@register_factory("Dense.expand")
def dense_expand(gen, dtype, dims, avoid):
    c = fresh("C", set(avoid) | set(dims))
    names = tuple(dims)
    weight = randn(gen, (2,) + tuple(dims.values()), dtype)
    return ops.Dense(weight, (c,) + names, names, (c,) + names)


@register_factory("Diagonal")
def diagonal(gen, dtype, dims, avoid):
    names = tuple(dims)
    trailing = names[_pick(gen, len(names)):]
    return ops.Diagonal(randn(gen, tuple(dims[d] for d in trailing), dtype), names)


@register_factory("Scalar")
def scalar(gen, dtype, dims, avoid):
    return ops.Scalar(randn(gen, (), dtype), tuple(dims))


@register_factory("Identity")
def identity(gen, dtype, dims, avoid):
    return ops.Identity(tuple(dims))


@register_factory("Zero")
def zero(gen, dtype, dims, avoid):
    return ops.Zero(tuple(dims))


@register_factory("FunctionLinop")
def function(gen, dtype, dims, avoid):
    names = tuple(dims)
    w = randn(gen, tuple(dims.values()), dtype)
    # flip + multiply: linear, with a vjp adjoint
    return ops.FunctionLinop(_flip_scale, w, ishape=names, oshape=names, sizes=dict(dims))


def _flip_scale(w, x):
    return torch.flip(x, (-1,)) * w


@register_factory("FunctionLinop.adjoint_fn")
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
