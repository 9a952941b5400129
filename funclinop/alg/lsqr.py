"""LSQR: least squares with only ``A`` and ``Aᴴ``, with Tikhonov damping."""

import torch

from ..errors import ShapeError
from ..linop import Linop
from ._vec import bcast, safe_div, sqnorm, vwhere
from .cg import _require_finite
from .info import SolveInfo

__all__ = ["lsqr"]


def lsqr(A: Linop, b: torch.Tensor, x0: torch.Tensor | None = None, *, damp: float = 0.0, max_iter: int = 100,
         tol: float = 1e-6, return_info: bool = False) -> torch.Tensor | tuple[torch.Tensor, SolveInfo]:
    """``argmin_x ||A x - b||² + damp² ||x||²`` by LSQR (Paige & Saunders).

    ``A`` may be non-square (more rows than columns, or fewer) and is
    applied only as ``A`` and ``A.H``, never as ``A.N``: LSQR is
    mathematically CG on the normal equations ``(AᴴA + damp² I) x = Aᴴ b``
    but better conditioned in floating point.

    Parameters
    ----------
    A : Linop
        Any operator (its adjoint ``A.H`` is used).
    b : Tensor
        Shaped like A's output. The whole tensor is one vector.
    x0 : Tensor, optional
        The starting point, shaped like A's input (default zeros). The
        problem solved is the same whatever x0 (damping acts on ``x``, not
        on ``x - x0``).
    damp : float or Tensor
        The Tikhonov weight (a real scalar, 0-dim tensor allowed).
    max_iter : int
        The most iterations (one ``A`` and one ``A.H`` each).
    tol : float or None
        Stop when ``||Aᴴ(b - A x) - damp² x|| <= tol * ||Aᴴ b||`` (the
        residual of the normal equations, 0 at the least-squares solution
        whether or not ``A x = b`` has a solution). A non-finite ``b`` or
        ``x0`` raises ValueError. With ``tol=None`` or ``tol=0`` exactly
        ``max_iter`` iterations run with no Python branch on tensor values,
        as for :func:`cg`.
    return_info : bool
        Also return a :class:`SolveInfo` (``residual_norm`` is the
        recurrence's estimate of that normal-equation residual).

    Notes
    -----
    ``Aᴴ b == 0`` returns zeros. A breakdown of the bidiagonalisation (an
    exact solution) stops the solve cleanly, with no division by zero; a
    non-finite value from A makes ``x`` NaN. From ``x0 = 0`` with
    ``damp = 0`` the iterates stay in the range of ``Aᴴ``, so a
    rank-deficient A gives the minimum-norm least-squares solution.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    >>> A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    >>> b = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    >>> x = fl.alg.lsqr(A, b, tol=1e-12)
    >>> torch.allclose(x, torch.linalg.lstsq(W, b).solution)
    True
    """
    if not isinstance(A, Linop):
        raise TypeError(
            f"lsqr: A must be a Linop (its adjoint A.H is needed), got {type(A).__name__}; "
            "wrap a function with fl.FunctionLinop(fn, params, adjoint_fn=...)"
        )
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"lsqr: b must be a torch.Tensor, got {type(b).__name__}")
    if x0 is not None and not isinstance(x0, torch.Tensor):
        raise TypeError(f"lsqr: x0 must be a torch.Tensor, got {type(x0).__name__}")
    if not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"lsqr: max_iter must be a non-negative int, got {max_iter!r}")
    damp = check_damp(damp, "lsqr")
    if tol:
        _require_finite(b, "b", "lsqr")
        if x0 is not None:
            _require_finite(x0, "x0", "lsqr")
    out = _lsqr(A, A.H, b, x0, damp=damp, max_iter=max_iter, tol=tol)
    x, iterations, residual, converged = out
    return (x, SolveInfo(iterations, residual, converged)) if return_info else x


def check_damp(damp, who):
    """``damp`` as None (no damping), a float, or a real 0-dim tensor; else a clear error."""
    if isinstance(damp, torch.Tensor):
        if damp.ndim != 0 or damp.is_complex() or not damp.is_floating_point():
            raise TypeError(f"{who}: damp must be a real scalar, got a {damp.dtype} tensor of shape {tuple(damp.shape)}")
        return damp
    if isinstance(damp, bool) or not isinstance(damp, (int, float)):
        raise TypeError(f"{who}: damp must be a real scalar, got {type(damp).__name__}")
    if not damp >= 0 or damp == float("inf"):
        raise ValueError(f"{who}: damp must be finite and >= 0, got {damp!r}")
    return float(damp) or None


def _lsqr(A, AH, b, x0=None, *, damp=None, max_iter, tol, batched=False, hook=None, who="lsqr"):
    """The iterations of :func:`lsqr` on checked arguments (``batched`` as for ``_cg``).

    Golub-Kahan bidiagonalisation of the stacked operator ``K = [A; damp I]``
    with right-hand side ``[b; 0]`` (so that a start ``x0`` keeps the damped
    problem unchanged); output-space vectors are pairs ``(u, u_damp)``, with
    no second part when ``damp`` is None. Scalars are tensors, one entry per
    problem, divisions are guarded, and a problem that is done keeps ``x``.
    """
    fixed = not tol

    def K(v):
        return (A(v),) if damp is None else (A(v), _scale(damp, v))

    def KH(u):
        return AH(u[0]) if damp is None else AH(u[0]) + _scale(damp, u[1])

    def norm(u):
        return sum(sqnorm(t, batched) for t in u).sqrt()

    AHb = AH(b)
    if x0 is None:
        x = torch.zeros_like(AHb)
        u = (b,) if damp is None else (b, torch.zeros_like(AHb))
    else:
        if x0.shape != AHb.shape:
            raise ShapeError(
                f"{who}: x0 of shape {tuple(x0.shape)} does not match A's input shape "
                f"{tuple(AHb.shape)} (the shape of Aᴴb)"
            )
        # Aᴴb == 0 has the solution 0 (the minimum-norm one).
        x = vwhere(sqnorm(AHb, batched) == 0, torch.zeros_like(x0), x0)
        u = tuple(t - s for t, s in zip((b,) if damp is None else (b, torch.zeros_like(x)), K(x)))
    AHb_norm = sqnorm(AHb, batched).sqrt()
    threshold = torch.zeros_like(AHb_norm) if fixed else tol * AHb_norm
    beta = norm(u)
    u = _unit(u, beta)
    v = AHb if x0 is None else KH(u)
    if x0 is None:
        v = bcast(safe_div(torch.ones_like(beta), beta), v) * v
    alfa = sqnorm(v, batched).sqrt()
    v = bcast(safe_div(torch.ones_like(alfa), alfa), v) * v
    w = v
    phibar, rhobar = beta, alfa
    arnorm = alfa * beta
    finite = torch.isfinite(arnorm) & torch.isfinite(AHb_norm)
    done = ~finite | (arnorm <= threshold)
    iterations = torch.zeros_like(beta, dtype=torch.int64)
    for i in range(max_iter):
        if not fixed and bool(done.all()):
            break
        # Bidiagonalisation: beta u = K v - alfa u, alfa v = Kᴴ u - beta v.
        u = tuple(s - bcast(alfa, t) * t for s, t in zip(K(v), u))
        beta = norm(u)
        u = _unit(u, beta)
        v = KH(u) - bcast(beta, v) * v
        alfa = sqnorm(v, batched).sqrt()
        v = bcast(safe_div(torch.ones_like(alfa), alfa), v) * v
        # A plane rotation eliminates beta from the bidiagonal.
        rho = torch.hypot(rhobar, beta)
        cs = torch.where(rho == 0, torch.ones_like(rho), safe_div(rhobar, rho))
        sn = safe_div(beta, rho)
        theta = sn * alfa
        rhobar = -cs * alfa
        phi = cs * phibar
        tau = sn * phi
        step_ok = ~done
        x = vwhere(step_ok, x + bcast(safe_div(phi, rho), w) * w, x)
        w = v - bcast(safe_div(theta, rho), w) * w
        phibar = torch.where(step_ok, sn * phibar, phibar)
        arnorm = torch.where(step_ok, alfa * tau.abs(), arnorm)
        iterations = iterations + step_ok.to(torch.int64)
        finite = finite & (done | (torch.isfinite(alfa) & torch.isfinite(beta)))
        done = done | ~finite | (arnorm <= threshold)
        if hook is not None:
            hook(i + 1, x, arnorm)
    converged = finite & (arnorm <= threshold)
    x = vwhere(finite, x, torch.full_like(x, float("nan")))
    residual = torch.where(finite, arnorm, torch.full_like(arnorm, float("nan")))
    return x, iterations, residual, converged


def _scale(s, v):
    return s * v if not isinstance(s, torch.Tensor) else bcast(s, v) * v


def _unit(u, norm):
    inv = safe_div(torch.ones_like(norm), norm)
    return tuple(bcast(inv, t) * t for t in u)
