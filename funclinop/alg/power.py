"""The power method: the largest-magnitude eigenpair of a Hermitian operator."""

from typing import Callable

import torch

from ..dims import named
from ..linop import Linop
from ._vec import apply_square, inner, norm2, operator_dtype_device, safe_div

__all__ = ["power_method", "opnorm", "eig_bounds"]


def power_method(A: Linop | Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor | None = None, *, max_iter: int = 100, tol: float = 1e-6,
                 generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                 device: "torch.device | str | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest-magnitude eigenvalue of a Hermitian A and a unit eigenvector.

    Parameters
    ----------
    A : Linop or callable
        A Hermitian operator mapping its input shape to itself (``A.N`` of
        any linop qualifies). For a non-Hermitian or non-square operator B,
        ``power_method(B.N)[0].sqrt()`` is its largest singular value.
    x0 : Tensor, optional
        The starting vector, nonzero. By default a random one (from
        ``generator``) shaped by A's input dims, whose sizes must then be
        fixed by A (``A.size(dim)``); a ``"..."`` in A's ishape adds no
        batch dims.
    max_iter : int
        The most iterations to run (one application of A each, plus one).
    tol : float or None
        Stop when ``||A v||`` (for the current unit vector ``v``, an estimate
        of ``|eigenvalue|`` that rises towards it) changes by at most ``tol``
        times its value. A zero or non-finite ``x0`` raises ValueError. With
        ``tol=None`` or ``tol=0`` exactly ``max_iter`` iterations run and no
        Python branch depends on tensor values (use this mode under
        ``torch.func`` transforms and ``torch.compile``); x0 is then not
        inspected, and a zero x0 gives NaN.
    generator : torch.Generator, optional
        Draws the random starting vector.
    dtype, device : optional
        Of the random starting vector; by default those of A's tensors.

    Returns
    -------
    (eigenvalue, vector)
        The eigenvalue (a real 0-dim tensor, signed: the Rayleigh quotient
        ``vᴴ A v``) and the unit eigenvector ``v`` (shaped like ``x0``). The
        whole tensor is one vector. When both ``+λ`` and ``-λ`` are
        eigenvalues of largest magnitude, it returns the one whose
        eigenvector has the larger component in ``x0``. A zero operator
        gives eigenvalue 0 and the normalised start vector; nothing divides
        by zero. A non-finite value from A gives NaN.

    Notes
    -----
    The iterates ``v_k = A^k x0 / ||A^k x0||`` alternate between two vectors
    when ``±λ`` are both dominant, so neither they nor their Rayleigh
    quotients converge; ``||A v_k||`` does (to ``|λ|``). The eigenvector is
    taken from the last two iterates: ``v_k + v_{k+1}`` (= ``(I + A/|λ|) v_k``)
    removes the ``-|λ|`` component and ``v_k - v_{k+1}`` the ``+|λ|`` one.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> A = fl.Diagonal(torch.tensor([1.0, -3.0, 2.0]), ("N",))
    >>> lam, v = fl.alg.power_method(A, torch.ones(3), tol=1e-10, max_iter=500)
    >>> round(float(lam), 4)
    -3.0
    >>> B = fl.Diagonal(torch.tensor([1.0, -3.0, 3.0, 0.5]), ("N",))
    >>> lam, v = fl.alg.power_method(B, torch.tensor([1.0, 2.0, 1.0, 1.0]), tol=1e-10, max_iter=500)
    >>> round(float(lam), 4), int(v.abs().argmax())
    (-3.0, 1)
    """
    if not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"power_method: max_iter must be a non-negative int, got {max_iter!r}")
    if x0 is None:
        x0 = _random_start(A, generator, dtype, device)
    elif not isinstance(x0, torch.Tensor):
        raise TypeError(f"power_method: x0 must be a torch.Tensor, got {type(x0).__name__}")
    fixed = not tol
    if not fixed:
        _check_start(x0)
    # Not safe_div: an (uninspected) zero x0 must give NaN, not a zero "unit" vector.
    v = x0 / norm2(x0).sqrt()
    w = apply_square(A, v, "power_method: A")
    w_norm = norm2(w).sqrt()
    v_prev, w_prev = v, w
    for _ in range(max_iter):
        v_prev, w_prev, previous = v, w, w_norm
        # A v == 0 keeps v: the zero operator's eigenvalue is 0, not NaN.
        v = torch.where(w_norm == 0, v, safe_div(w, w_norm))
        w = A(v)
        w_norm = norm2(w).sqrt()
        if not fixed and bool(~torch.isfinite(w_norm) | ((w_norm - previous).abs() <= tol * w_norm)):
            break
    return _dominant_pair(v_prev, w_prev, v, w)


def _dominant_pair(v, Av, v_next, Av_next):
    """The eigenpair for ``±||A v||`` in span{v, v_next}, ``v_next = A v / ||A v||``.

    The sum holds the ``+|λ|`` eigencomponent, the difference the ``-|λ|``
    one: the larger of the two is the dominant eigenvector. Squared norms
    are compared, so no sqrt of a vanishing norm enters a gradient.
    """
    plus, minus = v + v_next, v - v_next
    take_plus = norm2(plus) >= norm2(minus)
    u = torch.where(take_plus, plus, minus)
    Au = torch.where(take_plus, Av + Av_next, Av - Av_next)
    u_norm2 = norm2(u)
    return safe_div(inner(u, Au).real, u_norm2), safe_div(u, u_norm2.sqrt())


def _check_start(x0):
    if not bool(torch.isfinite(x0).all()):
        raise ValueError(f"power_method: x0 {tuple(x0.shape)} has non-finite entries (NaN or inf)")
    if not bool((x0 != 0).any()):
        raise ValueError(
            f"power_method: x0 {tuple(x0.shape)} is zero; the power method needs a nonzero start "
            "vector (leave x0 out for a random one)"
        )


def _random_start(A, generator, dtype, device):
    if not isinstance(A, Linop):
        raise TypeError(
            f"power_method: give x0 when A is not a Linop (got {type(A).__name__}); "
            "the start vector's shape comes from the operator's dim sizes"
        )
    shape = []
    for d in named(A.ishape):
        n = A.size(d)
        if n is None:
            raise ValueError(
                f"power_method: {A._name()} does not fix the size of input dim {d!r}; "
                "pass x0 to give the vector's shape"
            )
        shape.append(n)
    leaf_dtype, leaf_device = operator_dtype_device(A)
    if dtype is None:
        dtype = torch.get_default_dtype() if leaf_dtype is None else leaf_dtype
    if device is None:
        device = leaf_device
    if generator is not None and device is not None and generator.device != device:
        x0 = torch.randn(shape, dtype=dtype, generator=generator, device=generator.device)
        return x0.to(device)
    return torch.randn(shape, dtype=dtype, generator=generator, device=device)


def opnorm(A: Linop, x0: torch.Tensor | None = None, *, max_iter: int = 100, tol: float = 1e-6,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """The operator 2-norm of ``A``: its largest singular value.

    The square root of the power method's eigenvalue of ``A.N`` (so ``A``
    may be any Linop, square or not). The estimate rises towards the true
    norm as the iterations go (it never overshoots in exact arithmetic).

    Parameters
    ----------
    A : Linop
    x0, max_iter, tol, generator
        As for :func:`power_method` (``x0`` is shaped like A's input).

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> W = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> round(float(fl.alg.opnorm(fl.Dense(W, ("M", "N"), ("N",), ("M",)), tol=1e-8)), 4)
    3.0
    """
    if not isinstance(A, Linop):
        raise TypeError(f"opnorm: A must be a Linop (its normal A.N is used), got {type(A).__name__}")
    eigenvalue, _ = power_method(A.N, x0, max_iter=max_iter, tol=tol, generator=generator)
    return eigenvalue.clamp(min=0).sqrt()


def eig_bounds(A: Linop, x0: torch.Tensor | None = None, *, max_iter: int = 100, tol: float = 1e-6,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimates ``(λmin, λmax)`` of the spectrum of a Hermitian positive semidefinite ``A``.

    ``λmax`` is the power method's eigenvalue of ``A``; ``λmin`` is
    ``λmax - μ``, with ``μ`` that of ``λmax I - A`` (whose spectrum is
    ``[0, λmax - λmin]``). Both come from power iterations, so ``λmax`` is
    approached from below and ``λmin`` from above: widen the interval
    before relying on it as a bound (:func:`polynomial_preconditioner`
    does). Each costs up to ``max_iter`` applications of ``A``.

    Parameters
    ----------
    A : Linop or callable
        Hermitian positive semidefinite (``A.N``, ``A.N + λ I``); a callable
        needs ``x0``.
    x0, max_iter, tol, generator
        As for :func:`power_method`; both runs start from the same vector.

    Returns
    -------
    (Tensor, Tensor)
        Real 0-dim tensors, ``0 <= λmin <= λmax`` (clamped at 0).

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> A = fl.Diagonal(torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64), ("N",))
    >>> lo, hi = fl.alg.eig_bounds(A, torch.ones(3, dtype=torch.float64), tol=1e-12, max_iter=500)
    >>> round(float(lo), 6), round(float(hi), 6)
    (0.5, 4.0)
    """
    if x0 is None:
        x0 = _random_start(A, generator, None, None)
    hi, _ = power_method(A, x0, max_iter=max_iter, tol=tol)
    hi = hi.clamp(min=0)
    mu, _ = power_method(lambda v: hi * v - A(v), x0, max_iter=max_iter, tol=tol)
    return (hi - mu).clamp(min=0, max=None).minimum(hi), hi
