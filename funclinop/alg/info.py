"""What a solve did."""

from typing import NamedTuple

import torch

__all__ = ["SolveInfo"]


class SolveInfo(NamedTuple):
    """What :func:`solve`, :func:`minres` or :func:`lsqr` did.

    ``iterations``: the number of iterations that produced the returned
    ``x`` (int64); ``residual_norm``: the quantity the stopping test
    compares with ``tol`` (for cg and minres ``||b - A x||``, in the M-norm
    for a preconditioned minres; for lsqr the residual of the normal
    equations, ``||Aᴴ(b - A x) - damp² x||``), NaN when a non-finite value
    entered the solve; ``converged``: whether the test passed (with
    ``tol=None``: whether that residual is exactly 0), never true for a
    non-finite one. Under ``vmap`` each field has one entry per problem.
    """

    iterations: torch.Tensor
    residual_norm: torch.Tensor
    converged: torch.Tensor
