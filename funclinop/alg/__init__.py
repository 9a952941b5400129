"""Solvers and estimators on linops (or any callable ``x -> A x``).

All are pure functions. With ``tol=None`` they run a fixed number of
iterations with no data-dependent Python branching, so ``torch.func.grad``,
``torch.func.vmap`` and ``torch.compile(fullgraph=True)`` can trace them.
"""

from .cg import CGInfo, cg
from .power import power_method

__all__ = ["CGInfo", "cg", "power_method"]
