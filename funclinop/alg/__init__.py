"""Solvers and estimators on linops (or any callable ``x -> A x``).

All are pure functions. With ``tol=None`` they run a fixed number of
iterations with no data-dependent Python branching, so ``torch.func.grad``,
``torch.func.vmap`` and ``torch.compile(fullgraph=True)`` can trace them.
:func:`solve` differentiates the solution implicitly instead (one adjoint
solve in the backward pass) and works under ``vmap`` with a ``tol`` too.
"""

from .cg import CGInfo, cg
from .info import SolveInfo
from .lsqr import lsqr
from .minres import minres
from .power import eig_bounds, opnorm, power_method
from .precond import Polynomial, diagonal, jacobi, polynomial_preconditioner
from .solve import solve

__all__ = [
    "CGInfo", "SolveInfo", "cg", "minres", "lsqr", "solve",
    "power_method", "opnorm", "eig_bounds",
    "diagonal", "jacobi", "Polynomial", "polynomial_preconditioner",
]
