"""Conjugate gradients for Hermitian positive (semi)definite systems."""

import math
from typing import NamedTuple

import torch

from ..linop import Linop
from ._vec import apply_square, bcast, check_arguments, dot, sqnorm, vwhere

__all__ = ["cg", "CGInfo"]


class CGInfo(NamedTuple):
    """What :func:`cg` did.

    ``iterations``: the number of iterations that produced the returned
    ``x`` (an int64 tensor); ``residual_norm``: its ``||b - A x||``, as
    tracked by the recurrence, recomputed directly when a solve with a
    ``tol`` ends unconverged, NaN when a non-finite value entered the solve;
    ``converged``: whether ``residual_norm <= tol * ||b||`` (with
    ``tol=None``: whether it is exactly 0), never true for a non-finite one.
    """

    iterations: torch.Tensor
    residual_norm: torch.Tensor
    converged: torch.Tensor


def cg(A: Linop, b: torch.Tensor, x0: torch.Tensor | None = None, *, max_iter: int = 100, tol: float = 1e-6,
       M: Linop | None = None, return_info: bool = False) -> torch.Tensor | tuple[torch.Tensor, CGInfo]:
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
        Stop when ``||b - A x|| <= tol * ||b||``. A ``b`` or ``x0`` with NaN
        or inf entries raises ValueError. With ``tol=None`` or ``tol=0``
        exactly ``max_iter`` iterations run and no Python branch depends on
        tensor values: use this mode under ``torch.func.vmap``,
        ``torch.func.grad`` (differentiating through the unrolled
        iterations) and ``torch.compile(fullgraph=True)``; ``b`` and ``x0``
        are then not inspected, and non-finite ones give NaN (see Notes).
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
    division is guarded. The solve also stops when the residual norm grows
    past ``1/sqrt(eps)`` (eps of b's dtype) times the smallest so far: for
    a consistent system it can grow by at most ``sqrt(cond(A))``. The
    returned ``x`` is the iterate with the smallest residual norm (the last
    one whenever the solve converges). A solve with a ``tol`` that ends
    unconverged recomputes that residual as ``b - A x`` (one more
    application of A) and returns the start instead if it is no smaller.

    A singular A with ``b`` outside its range has no solution, and CG does
    not converge on it, not even on the range part. The residual keeps b's
    null-space component, so it never falls below that component's norm and
    ``converged`` stays false (unless tol is that loose), while the iterates
    diverge along the null space: geometrically (to overflow, left alone),
    or in one jump of about ``1/eps`` when ``pᴴAp`` of a null direction
    comes out as a small positive rounding error. cg stops at such a
    breakdown or blow-up; the ``x`` it returns is finite but is not a
    least-squares solution, often the start itself, and after a rounding
    jump it can be huge. For ``Diagonal([1, 0])`` and ``b = [1, 1]``, the
    first step gives ``x = [2, 2]`` with the residual norm unchanged at
    sqrt(2), the next direction ``[0, 2]`` is null, and cg returns ``x = 0``
    with ``iterations = 0``. Give a consistent ``b`` (``A.H y`` for
    ``A.N``) or regularise (``A.N + λI``); with ``b`` in the range CG
    converges, from ``x0 = 0`` to the minimum-norm solution.

    A non-finite value in the solve (in ``b`` or ``x0`` in the
    fixed-iteration mode, or from A or M, overflow included) makes ``x`` and
    ``residual_norm`` NaN, never a stale finite answer; with a ``tol`` it
    also stops the solve.

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
    check_arguments("cg", b, x0, max_iter)
    if tol:
        _require_finite(b, "b")
        if x0 is not None:
            _require_finite(x0, "x0")
    x, iterations, residual, converged = _cg(A, b, x0, max_iter=max_iter, tol=tol, M=M)
    if not return_info:
        return x
    return x, CGInfo(iterations, residual, converged)


def _cg(A, b, x0=None, *, max_iter, tol, M=None, batched=False, hook=None, who="cg", host=False):
    """The iterations of :func:`cg` on checked arguments: ``(x, iterations, residual_norm, converged)``.

    With ``batched``, axis 0 of ``b`` indexes independent problems: every
    inner product, step and stopping decision is per problem, ``A`` and ``M``
    map a batch of vectors to a batch, and the solve runs until all are done.
    ``hook(i, x, residual_norm)``, when given, is called after iteration ``i``.
    ``host=True`` runs :func:`_cg_host` instead (same results).
    """
    if host and not batched:
        return _cg_host(A, b, x0, max_iter=max_iter, tol=tol, M=M, hook=hook, who=who)
    fixed = not tol
    b_norm2 = sqnorm(b, batched)
    threshold = torch.zeros_like(b_norm2) if fixed else (tol * tol) * b_norm2
    eps = torch.finfo(b_norm2.dtype).eps
    if x0 is None:
        x, r = torch.zeros_like(b), b
    else:
        # b == 0 has the solution 0 (the minimum-norm one when A is singular).
        x = vwhere(b_norm2 == 0, torch.zeros_like(x0), x0)
        r = b - apply_square(A, x, f"{who}: A")
    z = r if M is None else apply_square(M, r, f"{who}: M")
    p = z
    rz = dot(r, z, batched).real
    rr = rz if M is None else sqnorm(r, batched)
    finite = torch.isfinite(rz) & torch.isfinite(rr)
    done = ~finite | (rr <= threshold)
    iterations = torch.zeros_like(rr, dtype=torch.int64)
    start = (x, rr, iterations)
    best_x, best_rr, best_iterations = start
    # 0-dim constants made once: a Python number in a tensor op costs a conversion per call
    zero, inf, eps = torch.zeros_like(rz), torch.full_like(rz, float("inf")), torch.full_like(rz, eps)
    # pAp + rr summed over the iterations: NaN or infinite once any value was (a
    # non-finite value from A, M or an overflow reaches pAp or the residual)
    total = zero
    improved = []  # per step: did it lower the smallest residual so far
    for i in range(max_iter):
        if not fixed and bool(done.all()):
            break
        Ap = apply_square(A, p, f"{who}: A")
        pAp = dot(p, Ap, batched).real
        stop = done | (pAp <= zero)
        # Once stopped, alpha = rz / inf = 0: the iterate stops changing. The guarded
        # division never sees 0/0, in values or in gradients.
        alpha = rz / torch.where(stop, inf, pAp)
        x = torch.addcmul(x, bcast(alpha, p), p)
        r = torch.addcmul(r, bcast(alpha, Ap), Ap, value=-1)
        z = r if M is None else M(r)
        rz_next = dot(r, z, batched).real
        # rz == 0 means r == 0 (so pAp == 0 and stop) unless M is only semidefinite
        beta = rz_next / torch.where(stop if M is None else stop | (rz == zero), inf, rz)
        p = torch.addcmul(z, bcast(beta, p), p)
        rz = rz_next
        rr = rz if M is None else sqnorm(r, batched)
        total = total + (pAp + rr if M is None else pAp + rr + rz)
        # For a consistent system ||r_k|| <= sqrt(cond(A)) ||r_j|| (j < k): growth past
        # 1/sqrt(eps) means b is outside A's range (or A is singular to working precision).
        # Without a tol, an exact solution stops at the next step (pAp == 0) and a
        # non-finite value makes x NaN at the end.
        done = stop | (rr * eps > best_rr)
        if not fixed:
            done = done | (rr <= threshold) | torch.isnan(total - total)
        # Keep the smallest-residual iterate, so diverging iterates are not what returns.
        better = rr < best_rr
        best_x = vwhere(better, x, best_x)
        best_rr = torch.where(better, rr, best_rr)
        improved.append(better)
        if hook is not None:
            hook(i + 1, x, rr.sqrt())
    finite = finite & ~torch.isnan(total - total)
    if improved:  # the best iterate came from the last step that lowered the residual
        steps = torch.arange(1, len(improved) + 1, device=b.device)
        best_iterations = (bcast(steps, best_rr.unsqueeze(0)) * torch.stack(improved)).amax(0)
    converged = finite & (best_rr <= threshold)
    if not fixed and bool((finite & ~converged).any()):
        best_x, best_rr, best_iterations = _no_worse_than_start(
            A, b, start, (best_x, best_rr, best_iterations), finite & ~converged, batched)
        converged = converged | (finite & (best_rr <= threshold))
    # Any non-finite value poisons the result visibly instead of leaving a stale finite x.
    x = vwhere(finite, best_x, torch.full_like(best_x, float("nan")))
    residual = torch.where(finite, best_rr, torch.full_like(best_rr, float("nan"))).sqrt()
    return x, best_iterations, residual, converged


def _cg_host(A, b, x0=None, *, max_iter, tol, M=None, hook=None, who="cg"):
    """``_cg`` for one problem with its scalars on the host, for eager solves on the CPU.

    Each inner product is read back as a Python float (free on the CPU), so
    the breakdown guards, the stopping tests and the best-iterate tracking
    are Python arithmetic, not a dozen tensor ops per iteration, and the
    updates are single ``add`` kernels. The decisions and the returned
    values are those of the tensor path (scalars in float64 rather than b's
    precision); it runs no iteration past the one that stops the solve,
    whose results the tensor path would leave unchanged. Not for autograd
    through the iterations, ``vmap`` or ``torch.compile``.
    """
    real = b.real.dtype if b.is_complex() else b.dtype
    eps = torch.finfo(real).eps
    b_norm2 = float(sqnorm(b))
    threshold = (tol * tol) * b_norm2 if tol else 0.0
    if x0 is None or b_norm2 == 0:
        # b == 0 has the solution 0 (the minimum-norm one when A is singular).
        x, r = torch.zeros_like(b), b
    else:
        x = x0
        r = b - apply_square(A, x, f"{who}: A")
    z = r if M is None else apply_square(M, r, f"{who}: M")
    p = z
    rz = float(dot(r, z).real)
    rr = rz if M is None else float(sqnorm(r))
    finite = math.isfinite(rz) and math.isfinite(rr)
    start = best = (x, rr, 0)
    done = not finite or rr <= threshold
    for i in range(max_iter):
        if done:
            break
        Ap = apply_square(A, p, f"{who}: A")
        pAp = float(dot(p, Ap).real)
        if not pAp > 0:  # breakdown, or NaN
            finite = not math.isnan(pAp) and pAp != -math.inf
            break
        alpha = rz / pAp
        x = x.add(p, alpha=alpha)
        r = r.add(Ap, alpha=-alpha)
        z = r if M is None else M(r)
        rz_next = float(dot(r, z).real)
        rr = rz_next if M is None else float(sqnorm(r))
        if not (math.isfinite(pAp + rr) and math.isfinite(rz_next)):
            finite = False
            break
        p = z.add(p, alpha=rz_next / rz) if rz != 0 else z
        rz = rz_next
        # as in _cg: divergence is judged against the best residual before this step
        done = rr <= threshold or rr * eps > best[1]
        if rr < best[1]:
            best = (x, rr, i + 1)
        if hook is not None:
            hook(i + 1, x, torch.tensor(math.sqrt(rr), dtype=real, device=b.device))
    x, best_rr, iterations = best
    converged = finite and best_rr <= threshold
    if tol and finite and not converged:
        # see _no_worse_than_start
        true_rr = float(sqnorm(b - A(x)))
        x, best_rr, iterations = (x, true_rr, iterations) if true_rr < start[1] else start
        converged = best_rr <= threshold
    if not finite:
        x, best_rr = torch.full_like(x, float("nan")), float("nan")
    device = b.device
    return (x, torch.tensor(iterations, device=device), torch.tensor(math.sqrt(best_rr), dtype=real, device=device),
            torch.tensor(converged, device=device))


def _no_worse_than_start(A, b, start, best, unconverged, batched):
    """``best`` with its true squared residual, or ``start`` if that is no smaller,
    for the ``unconverged`` problems (the others keep ``best``).

    A step along a direction that is null only to rounding (``pᴴAp`` tiny but
    positive, as for b outside A's range) throws x far along it while the
    recurrence residual drifts away from ``b - A x``: only a direct residual
    shows it.
    """
    x, best_rr, iterations = best
    rr = sqnorm(b - A(x), batched)
    back = unconverged & ~(rr < start[1])
    rr = torch.where(unconverged, rr, best_rr)
    return (vwhere(back, start[0], x), torch.where(back, start[1], rr), torch.where(back, start[2], iterations))


def _require_finite(t, name, who="cg"):
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{who}: {name} {tuple(t.shape)} has non-finite entries (NaN or inf)")
