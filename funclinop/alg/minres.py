"""MINRES for Hermitian (possibly indefinite) systems."""

import torch

from ..linop import Linop
from ._vec import apply_square, bcast, check_arguments, dot, safe_div, sqnorm, vwhere
from .cg import _require_finite
from .info import SolveInfo

__all__ = ["minres"]


def minres(A: Linop, b: torch.Tensor, x0: torch.Tensor | None = None, *, max_iter: int = 100, tol: float = 1e-6,
           M: Linop | None = None, return_info: bool = False) -> torch.Tensor | tuple[torch.Tensor, SolveInfo]:
    """Solve ``A x = b`` for a Hermitian ``A`` by MINRES (Paige & Saunders).

    Unlike :func:`cg`, ``A`` may be indefinite (a saddle point system, a
    shifted operator ``A.N - σI``); each iterate minimises ``||b - A x||``
    over its Krylov space, so the residual never grows.

    Parameters
    ----------
    A : Linop or callable
        A Hermitian operator mapping tensors shaped like ``b`` to tensors
        shaped like ``b``.
    b : Tensor
        The right-hand side. The whole tensor is one vector (vmap, or
        :func:`solve` under vmap, for independent problems).
    x0 : Tensor, optional
        The starting point (default zeros).
    max_iter : int
        The most iterations to run (one application of A and of M each).
    tol : float or None
        Stop when ``||b - A x|| <= tol * ||b||``, both measured in the norm
        ``sqrt(rᴴ M r)`` when a preconditioner is given (the norm MINRES
        minimises). A non-finite ``b`` or ``x0`` raises ValueError. With
        ``tol=None`` or ``tol=0`` exactly ``max_iter`` iterations run with no
        Python branch on tensor values (for ``torch.func`` transforms and
        ``torch.compile``), as for :func:`cg`.
    M : Linop or callable, optional
        A Hermitian positive definite preconditioner approximating ``A⁻¹``
        (for an indefinite A, of ``|A|⁻¹``).
    return_info : bool
        Also return a :class:`SolveInfo` (``residual_norm`` is the
        recurrence's estimate of ``||b - A x||``, in the M-norm with M).

    Notes
    -----
    ``b == 0`` returns zeros. An exact solution in the Krylov space (the
    Lanczos process breaks down) stops the solve cleanly, never dividing by
    zero; so does ``rᴴ M r < 0``, which means M is not positive definite or A
    is not Hermitian (``converged`` stays false). A non-finite value from A
    or M makes ``x`` and ``residual_norm`` NaN. For a singular A with ``b``
    outside its range, MINRES reduces ``||b - A x||`` towards its least
    value, but its ``x`` need not be the minimum-norm least-squares solution.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> A = fl.Diagonal(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64), ("N",))
    >>> x = fl.alg.minres(A, torch.ones(3, dtype=torch.float64), tol=1e-12)
    >>> x
    tensor([ 0.3333, -1.0000,  0.5000], dtype=torch.float64)
    """
    check_arguments("minres", b, x0, max_iter)
    if tol:
        _require_finite(b, "b", "minres")
        if x0 is not None:
            _require_finite(x0, "x0", "minres")
    x, iterations, residual, converged = _minres(A, b, x0, max_iter=max_iter, tol=tol, M=M)
    return (x, SolveInfo(iterations, residual, converged)) if return_info else x


def _minres(A, b, x0=None, *, max_iter, tol, M=None, batched=False, hook=None, who="minres"):
    """The iterations of :func:`minres` on checked arguments (``batched`` as for ``_cg``).

    Follows the recurrences of Paige & Saunders' MINRES (as in
    ``scipy.sparse.linalg.minres``) with every scalar a tensor (one entry per
    problem) and every division guarded; a problem that is done keeps its
    ``x`` while the others go on.
    """
    fixed = not tol
    precond = (lambda v: v) if M is None else M
    if x0 is None:
        x, r1 = torch.zeros_like(b), b
    else:
        b_zero = sqnorm(b, batched) == 0
        # b == 0 has the solution 0 (the minimum-norm one when A is singular).
        x = vwhere(b_zero, torch.zeros_like(x0), x0)
        r1 = b - apply_square(A, x, f"{who}: A")
    y = r1 if M is None else apply_square(M, r1, f"{who}: M")
    beta1_sq = dot(r1, y, batched).real
    b_norm_sq = beta1_sq if x0 is None else dot(b, precond(b), batched).real
    threshold = torch.zeros_like(beta1_sq) if fixed else tol * b_norm_sq.clamp(min=0).sqrt()
    finite = torch.isfinite(beta1_sq) & torch.isfinite(b_norm_sq)
    beta = beta1_sq.clamp(min=0).sqrt()
    done = ~finite | (beta1_sq < 0) | (beta <= threshold)
    indefinite = beta1_sq < 0
    zero = torch.zeros_like(beta)
    old_beta, dbar, epsln, phibar = zero, zero, zero, beta
    cs, sn = -torch.ones_like(beta), zero
    w, w2 = torch.zeros_like(x), torch.zeros_like(x)
    r2 = r1
    eps = torch.finfo(beta.dtype).eps
    iterations = torch.zeros_like(beta, dtype=torch.int64)
    for i in range(max_iter):
        if not fixed and bool(done.all()):
            break
        # Lanczos step: v = y / beta is the next basis vector.
        v = bcast(safe_div(torch.ones_like(beta), beta), y) * y
        y = apply_square(A, v, f"{who}: A")
        y = y - bcast(safe_div(beta, old_beta), r1) * r1
        alfa = dot(v, y, batched).real
        y = y - bcast(safe_div(alfa, beta), r2) * r2
        r1, r2 = r2, y
        y = precond(r2)
        old_beta = beta
        beta_sq = dot(r2, y, batched).real
        beta = beta_sq.clamp(min=0).sqrt()
        # Apply the previous rotation, then build the next one.
        old_eps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = -cs * beta
        gamma = torch.hypot(gbar, beta).clamp(min=eps)
        cs, sn = gbar / gamma, beta / gamma
        phi = cs * phibar
        w1, w2 = w2, w
        w = (v - bcast(old_eps, w1) * w1 - bcast(delta, w2) * w2) / bcast(gamma, v)
        step_ok = ~done
        x = vwhere(step_ok, x + bcast(phi, w) * w, x)
        phibar = torch.where(step_ok, sn * phibar, phibar)
        iterations = iterations + step_ok.to(torch.int64)
        finite = finite & (done | (torch.isfinite(alfa) & torch.isfinite(beta_sq)))
        indefinite = indefinite | (step_ok & (beta_sq < 0))
        done = done | ~finite | indefinite | (phibar <= threshold)
        if hook is not None:
            hook(i + 1, x, phibar)
    converged = finite & ~indefinite & (phibar <= threshold)
    x = vwhere(finite, x, torch.full_like(x, float("nan")))
    residual = torch.where(finite, phibar, torch.full_like(phibar, float("nan")))
    return x, iterations, residual, converged
