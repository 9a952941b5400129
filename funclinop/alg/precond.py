"""Preconditioners: Jacobi (from an operator's diagonal) and polynomials in the operator.

A preconditioner ``M`` for :func:`solve` (cg, minres) is any Hermitian
positive definite operator approximating ``A⁻¹``. The ones built here are
ordinary operators (pytrees), so a solve with them still works under
``vmap``, ``grad`` and ``torch.compile``.
"""

import functools
import math

import numpy as np
import torch

from ..compose import Add
from ..dims import named, unify
from ..errors import ShapeError
from ..linop import Linop, SameShape, derived, static
from ..ops.dense import Dense
from ..ops.diagonal import Diagonal, Scalar
from ..ops.identity import Identity
from .power import eig_bounds

__all__ = ["diagonal", "jacobi", "Polynomial", "polynomial_preconditioner"]


# ---- the diagonal of an operator ------------------------------------------------------


def diagonal(A: Linop, *, probes: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The diagonal of a square operator, shaped to broadcast against its input.

    Exact and cheap for the operators whose structure gives it (Diagonal,
    Scalar, Identity, a square Dense such as the normal of a Dense, and sums
    of these). For any other operator give ``probes=k``: the stochastic
    estimate ``Σ z ⊙ A z / Σ z ⊙ z`` over ``k`` random ±1 vectors (k
    applications of A; exact for a diagonal A, unbiased in general).

    >>> import torch, funclinop as fl
    >>> W = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> E = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    >>> fl.alg.diagonal(E.N + fl.Scalar(0.5, ("N",)))
    tensor([10.5000, 20.5000])
    """
    if not isinstance(A, Linop):
        raise TypeError(f"diagonal: A must be a Linop, got {type(A).__name__}")
    if named(A.ishape) != named(A.oshape):
        raise ShapeError(f"diagonal: {A._name()} is not square (it maps {A.ishape} to {A.oshape})")
    if probes is not None:
        return _probed_diagonal(A, probes, generator)
    d = _diagonal(A)
    if d is None:
        raise TypeError(
            f"diagonal: {A._name()} has no cheap exact diagonal; estimate it with probes=k "
            "(k applications of the operator), or build M from what you know of A"
        )
    return d


@functools.singledispatch
def _diagonal(A):
    """The exact diagonal where the structure gives it, else None (open to new types)."""
    return None


@_diagonal.register
def _(A: Diagonal):
    return A.weight


@_diagonal.register
def _(A: Scalar):
    return A.weight


@_diagonal.register
def _(A: Identity):
    return torch.ones(()) if A.ishape == A.oshape else None


@_diagonal.register
def _(A: Add):
    parts = [_diagonal(op) for op in A.linops]
    if any(p is None for p in parts):
        return None
    # each diagonal is aligned with the trailing input dims: they broadcast together
    return functools.reduce(torch.add, parts)


@_diagonal.register
def _(A: Dense):
    """Input index i meets output index i: the weight's entries where each input
    label and its output label take the same value."""
    inames, onames = named(A.ishape), named(A.oshape)
    if inames != onames:
        return None
    letters: dict[str, str] = {}
    for k, d in enumerate(inames):
        il, ol = A.ilabels[k], A.olabels[k]
        letters.setdefault(il, chr(ord("a") + k))
        letters.setdefault(ol, letters[il])
        if letters[il] != letters[ol]:
            return None
    wl = A.weightshape
    if any(d not in letters for d in wl):
        return None  # a weight dim that is neither an input nor an output index
    kept = [k for k, d in enumerate(inames) if A.ilabels[k] in wl or A.olabels[k] in wl]
    out = "".join(chr(ord("a") + k) for k in kept)
    diag = torch.einsum("".join(letters[l] for l in wl) + "->" + out, A.weight)
    # dims the weight lacks broadcast: size-1 axes in the input's order
    shape = [diag.shape[kept.index(k)] if k in kept else 1 for k in range(len(inames))]
    return diag.reshape(shape)


def _probed_diagonal(A, probes, generator):
    from .power import _random_start

    if not isinstance(probes, int) or probes < 1:
        raise ValueError(f"diagonal: probes must be a positive int, got {probes!r}")
    x = _random_start(A, generator, None, None)
    shape, dtype = x.shape, x.dtype
    z = torch.randint(0, 2, (probes,) + tuple(shape), generator=generator).to(x.device) * 2 - 1
    z = z.to(dtype)
    Az = torch.func.vmap(A)(z)
    return (z.conj() * Az).sum(0) / probes


def jacobi(A: Linop, *, probes: int | None = None, generator: torch.Generator | None = None) -> Linop:
    """The Jacobi preconditioner ``diag(A)⁻¹`` as a :class:`Diagonal` operator.

    The diagonal comes from :func:`diagonal` (exact, or estimated with
    ``probes``); a Hermitian A has a real diagonal, and its real part is
    used. Zero entries (a null direction) are left alone (inverse 1).

    >>> import torch, funclinop as fl
    >>> A = fl.Diagonal(torch.tensor([2.0, 4.0]), ("N",))
    >>> fl.alg.jacobi(A).weight
    tensor([0.5000, 0.2500])
    """
    d = diagonal(A, probes=probes, generator=generator)
    d = d.real if d.is_complex() else d
    inv = torch.where(d == 0, torch.ones_like(d), 1 / torch.where(d == 0, torch.ones_like(d), d))
    return Diagonal(inv, A.ishape)


# ---- polynomial preconditioners ---------------------------------------------------------


class Polynomial(SameShape, Linop):
    """``p(A)`` for a square ``A``: a polynomial given by its Chebyshev coefficients.

    ``p(λ) = Σ_k c_k T_k(s(λ))``, with ``s`` mapping ``interval = (a, b)``
    onto ``[-1, 1]``; ``apply`` runs the Clenshaw recurrence, one
    application of ``A`` per degree (numerically stable at any degree). The
    coefficients and interval are static floats; A is the operator's child,
    so ``p(A)`` is a pytree like any other. Build one with
    :func:`polynomial_preconditioner`.

    >>> import torch, funclinop as fl
    >>> A = fl.Diagonal(torch.tensor([1.0, 2.0], dtype=torch.float64), ("N",))
    >>> P = fl.alg.Polynomial(A, (0.0, 1.0), (0.0, 2.0))  # T_1(s(λ)) = λ - 1
    >>> P(torch.ones(2, dtype=torch.float64))
    tensor([0., 1.], dtype=torch.float64)
    """

    linop: Linop
    coeffs: tuple = static(converter=lambda c, what: tuple(float(t) for t in c))
    interval: tuple = static(converter=lambda i, what: tuple(float(t) for t in i))
    ioshape: tuple = derived()

    def _precompute(self):
        if not isinstance(self.linop, Linop):
            raise TypeError(f"Polynomial: linop must be a Linop, got {type(self.linop).__name__}")
        ioshape = unify(self.linop.ishape, self.linop.oshape)
        if ioshape is None or named(self.linop.ishape) != named(self.linop.oshape):
            raise ShapeError(f"Polynomial: {self.linop._name()} is not square")
        coeffs, (a, b) = self.coeffs, self.interval
        if not coeffs:
            raise ValueError("Polynomial: needs at least one coefficient")
        if not -math.inf < a < b < math.inf:  # NaN fails every comparison
            raise ValueError(f"Polynomial: interval must be finite with a < b, got {(a, b)}")
        return {"ioshape": ioshape}

    def apply(self, x):
        a, b = self.interval
        scale, shift = 2.0 / (b - a), (a + b) / (b - a)
        A = self.linop

        def s(v):  # s(A) v, with s(λ) = (2λ - a - b) / (b - a)
            return scale * A.apply(v) - shift * v

        c = self.coeffs
        if len(c) == 1:
            return c[0] * x
        b1, b2 = c[-1] * x, torch.zeros_like(x)
        for ck in reversed(c[1:-1]):
            b1, b2 = ck * x + 2 * s(b1) - b2, b1
        return c[0] * x + s(b1) - b2

    def adjoint(self):
        # real coefficients: p(A)ᴴ = p(Aᴴ) (= p(A) for a Hermitian A)
        return self._derive(linop=self.linop.adjoint())

    def size(self, dim):
        return self.linop.size(dim)

    def value(self, lam):
        """``p(λ)`` for scalars or a numpy array (to inspect the polynomial)."""
        from numpy.polynomial import chebyshev

        a, b = self.interval
        return chebyshev.chebval((2 * np.asarray(lam, dtype=np.float64) - a - b) / (b - a), self.coeffs)


def polynomial_preconditioner(A: Linop, degree: int, *, kind: str = "chebyshev",
                              bounds: tuple[float, float] | None = None, margin: float = 0.05,
                              x0: torch.Tensor | None = None, generator: torch.Generator | None = None,
                              max_iter: int = 100, tol: float = 1e-4) -> "Polynomial":
    """A polynomial ``p(A) ≈ A⁻¹`` for a Hermitian positive (semi)definite ``A``.

    ``kind="chebyshev"`` minimises ``max |1 - λ p(λ)|`` over ``[λmin, λmax]``
    (the residual polynomial is a scaled Chebyshev polynomial; it needs
    ``λmin > 0``);
    ``kind="least_squares"`` minimises ``∫ (1 - λ p(λ))² dλ`` over the same
    interval (Johnson, Micchelli & Paul; torchlinops' ``l_2``). Both are
    built in float64 numpy, without sympy, and are positive on ``(0, λmax]``,
    so ``p(A)`` is Hermitian positive definite: a valid ``M`` for cg. One
    application costs ``degree`` applications of ``A``; CG then needs fewer
    iterations, each dearer, so the time saved depends on the spectrum.

    Parameters
    ----------
    A : Linop
        Hermitian positive (semi)definite, such as ``A.N + λ I``.
    degree : int
        The degree of ``p`` (0 is a scaled identity).
    kind : {"chebyshev", "least_squares"}
    bounds : (float, float), optional
        ``(λmin, λmax)``; by default estimated with :func:`eig_bounds`
        (``x0``, ``generator``, ``max_iter``, ``tol`` go to it), then
        widened: λmax by ``margin`` (relative), since the power method
        approaches it from below.
    margin : float

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> A = fl.Diagonal(torch.linspace(1.0, 100.0, 50, dtype=torch.float64), ("N",))
    >>> M = fl.alg.polynomial_preconditioner(A, 4, bounds=(1.0, 100.0))
    >>> b = torch.ones(50, dtype=torch.float64)
    >>> _, plain = fl.alg.solve(A, b, tol=1e-10, return_info=True)
    >>> _, pre = fl.alg.solve(A, b, M=M, tol=1e-10, return_info=True)
    >>> int(pre.iterations) < int(plain.iterations)
    True
    """
    if not isinstance(A, Linop):
        raise TypeError(f"polynomial_preconditioner: A must be a Linop, got {type(A).__name__}")
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"polynomial_preconditioner: degree must be an int >= 0, got {degree!r}")
    if kind not in ("chebyshev", "least_squares"):
        raise ValueError(f"polynomial_preconditioner: kind must be 'chebyshev' or 'least_squares', got {kind!r}")
    if bounds is None:
        bound = eig_bounds(A, x0, generator=generator, max_iter=max_iter, tol=tol)
        lo, hi = float(bound[0]), float(bound[1]) * (1 + margin)
    else:
        lo, hi = (float(t) for t in bounds)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
        raise ValueError(
            f"polynomial_preconditioner: the spectrum bounds must satisfy 0 <= λmin < λmax, got {(lo, hi)} "
            f"for {A._name()} (a zero or indefinite operator has no such preconditioner)"
        )
    if kind == "chebyshev" and degree > 0 and not lo > 0:
        raise ValueError(
            f"polynomial_preconditioner: chebyshev needs λmin > 0, got bounds {(lo, hi)} for {A._name()} "
            "(on [0, λmax] its residual polynomial reaches 1 inside the interval and p(A) is singular); "
            "regularise (A.N + λI), give a positive λmin, or use kind='least_squares'"
        )
    coeffs = (_chebyshev if kind == "chebyshev" else _least_squares)(degree, lo, hi)
    P = Polynomial(A, tuple(coeffs), (lo, hi))
    grid = np.linspace(0, hi, 2001)[1:]
    if not (P.value(grid) > 0).all():
        raise ValueError(
            f"polynomial_preconditioner: the {kind} polynomial of degree {degree} on {(lo, hi)} is not "
            "positive on (0, λmax], so p(A) would not be positive definite; try a lower degree"
        )
    return P


def _chebyshev(degree, lo, hi):
    """Chebyshev coefficients on [lo, hi] of p with 1 - λ p(λ) = T_{d+1}(σ(λ)) / T_{d+1}(σ(0))."""
    from numpy.polynomial import Chebyshev
    from numpy.polynomial import chebyshev as C

    m = degree + 1
    unit = np.zeros(m + 1)
    unit[m] = 1.0
    sigma0 = (hi + lo) / (hi - lo)
    t0 = C.chebval(sigma0, unit)

    def p(lam):
        sigma = (hi + lo - 2 * lam) / (hi - lo)
        return (1 - C.chebval(sigma, unit) / t0) / lam

    # p has degree d: interpolation at d + 1 Chebyshev points (inside (lo, hi), so λ > 0) is exact
    return Chebyshev.interpolate(p, degree, domain=[lo, hi]).coef


def _least_squares(degree, lo, hi):
    """Chebyshev coefficients on [lo, hi] of argmin_p ∫_lo^hi (1 - λ p(λ))² dλ."""
    from numpy.polynomial import chebyshev as C
    from numpy.polynomial import legendre

    nodes, weights = legendre.leggauss(degree + 3)  # exact for the degree 2(d + 1) integrand
    lam = (hi - lo) / 2 * nodes + (hi + lo) / 2
    s = (2 * lam - lo - hi) / (hi - lo)
    basis = lam[:, None] * C.chebvander(s, degree)  # λ T_k(s(λ))
    w = np.sqrt(weights * (hi - lo) / 2)
    coeffs, *_ = np.linalg.lstsq(w[:, None] * basis, w, rcond=None)
    return coeffs
