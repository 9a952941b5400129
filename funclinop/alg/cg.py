"""Conjugate gradients for Hermitian positive (semi)definite systems."""

from typing import NamedTuple

import torch

from ._vec import inner, norm2, safe_div

__all__ = ["cg", "CGInfo"]


class CGInfo(NamedTuple):
    """What :func:`cg` did.

    ``iterations``: the number of iterations that updated the solution (an
    int64 tensor); ``residual_norm``: ``||b - A x||`` as tracked by the
    recurrence; ``converged``: whether ``residual_norm <= tol * ||b||``.
    """

    iterations: torch.Tensor
    residual_norm: torch.Tensor
    converged: torch.Tensor


def cg(A, b, x0=None, *, max_iter=100, tol=1e-6, M=None, return_info=False):
    """Solve ``A x = b`` by (preconditioned) conjugate gradients.

    Parameters
    ----------
    A : Linop or callable
        A Hermitian positive (semi)definite operator, ``x -> A x``, mapping
        tensors shaped like ``b`` to tensors shaped like ``b`` (``A.N`` of
        any linop qualifies).
    b : Tensor
        The right-hand side, shaped like A's input. The whole tensor is one
        vector: leading batch dims are not separate systems (vmap for that).
    x0 : Tensor, optional
        The starting point (default zeros). Never modified.
    max_iter : int
        The most iterations to run.
    tol : float or None
        Stop when ``||b - A x|| <= tol * ||b||``. With ``tol=None`` or
        ``tol=0`` exactly ``max_iter`` iterations run and no Python branch
        depends on tensor values: use this mode under ``torch.func.vmap``,
        ``torch.func.grad`` (differentiating through the unrolled
        iterations) and ``torch.compile(fullgraph=True)``.
    M : Linop or callable, optional
        A Hermitian positive definite preconditioner approximating A⁻¹.
    return_info : bool
        Also return a :class:`CGInfo`.

    Returns
    -------
    Tensor, or (Tensor, CGInfo) with ``return_info=True``.

    Notes
    -----
    ``b == 0`` returns zeros (the minimum-norm solution), whatever ``x0``.
    Breakdown never produces NaN: an iteration where ``pᴴAp <= 0`` or the
    residual is exactly zero stops the solve (in the fixed-iteration mode
    the remaining iterations leave the solution unchanged), and every
    division is guarded, so the result stays finite and differentiable.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> W = torch.randn(20, 5, dtype=torch.float64)
    >>> A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    >>> b = torch.randn(5, dtype=torch.float64)
    >>> x = fl.alg.cg(A.N, b, tol=1e-12)
    >>> torch.allclose(x, torch.linalg.solve(W.T @ W, b))
    True
    """
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"cg: b must be a torch.Tensor, got {type(b).__name__}")
    if x0 is not None and (not isinstance(x0, torch.Tensor) or x0.shape != b.shape):
        what = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise ValueError(f"cg: x0 must be a tensor shaped like b {tuple(b.shape)}, got {what}")
    if not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"cg: max_iter must be a non-negative int, got {max_iter!r}")
    fixed = not tol
    b_norm2 = norm2(b)
    threshold = torch.zeros_like(b_norm2) if fixed else (tol * tol) * b_norm2
    if x0 is None:
        x, r = torch.zeros_like(b), b
    else:
        # b == 0 has the solution 0 (the minimum-norm one when A is singular).
        x = torch.where(b_norm2 == 0, torch.zeros_like(x0), x0)
        r = b - A(x)
    z = r if M is None else M(r)
    p = z
    rz = inner(r, z).real
    rr = rz if M is None else norm2(r)
    done = rr <= threshold
    iterations = torch.zeros((), dtype=torch.int64, device=b.device)
    for _ in range(max_iter):
        if not fixed and bool(done):
            break
        Ap = A(p)
        pAp = inner(p, Ap).real
        done = done | (pAp <= 0)
        # Once done, alpha = 0 and p is kept: the iterate stops changing.
        alpha = torch.where(done, torch.zeros_like(rz), safe_div(rz, pAp))
        x = x + alpha * p
        r = r - alpha * Ap
        z = r if M is None else M(r)
        rz_next = inner(r, z).real
        p = torch.where(done, p, z + safe_div(rz_next, rz) * p)
        iterations = iterations + (~done).to(torch.int64)
        rz = rz_next
        rr = rz if M is None else norm2(r)
        done = done | (rr <= threshold)
    if not return_info:
        return x
    return x, CGInfo(iterations, rr.sqrt(), rr <= threshold)
