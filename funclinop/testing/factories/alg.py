"""Factories for the operators of ``funclinop.alg`` (polynomial preconditioners)."""

from ...alg.precond import Polynomial
from ..registry import pick, register_factory
from .core import dense, diagonal


@register_factory("Polynomial", min_size=0)
def polynomial(gen, dtype, dims, avoid):
    # p(A) of a square operator: a Diagonal, or the normal of a Dense (which mixes a dim)
    inner = diagonal(gen, dtype, dims, avoid) if pick(gen, 2) else dense(gen, dtype, dims, avoid).N
    coeffs = tuple(float(c) / 4 for c in (1 + pick(gen, 4) for _ in range(1 + pick(gen, 4))))
    lo = float(pick(gen, 3))
    return Polynomial(inner, coeffs, (lo, lo + 1 + pick(gen, 4)))
