"""Preconditioners (Jacobi, polynomials), opnorm and eig_bounds."""

import numpy as np
import pytest
import torch
from torch.func import grad, vmap

import funclinop as fl
from funclinop.demo import cartesian_mask, coil_maps, sense_operator
from funclinop.errors import ShapeError

REAL, COMPLEX = torch.float64, torch.complex128


def randn(gen, *shape, dtype=REAL):
    if dtype.is_complex:
        return torch.complex(randn(gen, *shape, dtype=REAL), randn(gen, *shape, dtype=REAL))
    return torch.randn(*shape, dtype=dtype, generator=gen)


def materialise(A, shape, dtype):
    n = int(np.prod(shape))
    return vmap(A)(torch.eye(n, dtype=dtype).reshape((n,) + shape)).reshape(n, -1).T


def square_operators(gen):
    """(operator, input shape) pairs whose diagonal is exact and cheap."""
    W = randn(gen, 5, 3, 4, dtype=COMPLEX)
    E = fl.Dense(W, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))  # coil maps: normal is elementwise
    V = randn(gen, 6, 4, dtype=COMPLEX)
    F = fl.Dense(V, ("M", "Ny"), fl.Dim("NxNy"), ("Nx", "M"))  # contracts Ny: normal is a 4x4 gram per Nx
    S = fl.Dense(randn(gen, 4, 4, dtype=COMPLEX), ("Ny1", "Ny"), fl.Dim("NxNy"), fl.Dim("NxNy"),
                 ilabels=("Nx", "Ny"), olabels=("Nx", "Ny1"))  # a square matrix along Ny
    D = fl.Diagonal(randn(gen, 4, dtype=COMPLEX), fl.Dim("NxNy"))
    return {
        "Diagonal": D,
        "Scalar": fl.Scalar(2.5, fl.Dim("NxNy")),
        "Identity": fl.Identity(fl.Dim("NxNy")),
        "Dense.normal (elementwise)": E.N,
        "Dense.normal (gram)": F.N,
        "Dense (square, labelled)": S,
        "Add": fl.Add(E.N, D, fl.Identity(fl.Dim("NxNy"))),
    }


@pytest.mark.parametrize("name", ["Diagonal", "Scalar", "Identity", "Dense.normal (elementwise)",
                                  "Dense.normal (gram)", "Dense (square, labelled)", "Add"])
def test_diagonal_is_exact(name):
    A = square_operators(torch.Generator().manual_seed(0))[name]
    want = torch.diagonal(materialise(A, (3, 4), COMPLEX)).reshape(3, 4)
    got = torch.broadcast_to(fl.alg.diagonal(A), (3, 4)).to(COMPLEX)
    torch.testing.assert_close(got, want)


def test_diagonal_probes_and_refusals():
    gen = torch.Generator().manual_seed(1)
    D = fl.Diagonal(randn(gen, 3, 4), fl.Dim("NxNy"))
    torch.testing.assert_close(fl.alg.diagonal(fl.Chain(D, fl.Identity(fl.Dim("NxNy"))), probes=1, generator=gen),
                               D.weight)  # ±1 probes are exact for a diagonal operator
    maps = coil_maps(8, 2).to(COMPLEX)
    A = sense_operator(maps, cartesian_mask(8, 2.0))
    with pytest.raises(TypeError, match=r"Chain\(.*\) has no cheap exact diagonal; estimate it with probes=k"):
        fl.alg.diagonal(A.N)
    with pytest.raises(ShapeError, match="is not square"):
        fl.alg.diagonal(A)
    estimate = fl.alg.diagonal(A.N, probes=400, generator=gen)
    want = torch.diagonal(materialise(A.N, (8, 8), COMPLEX)).reshape(8, 8)
    assert float((estimate - want).norm() / want.norm()) < 0.25  # a stochastic estimate


def test_jacobi_saves_iterations_on_a_badly_scaled_system():
    gen = torch.Generator().manual_seed(2)
    scales = torch.logspace(0, 4, 30, dtype=REAL)
    B = randn(gen, 40, 30) * scales
    E = fl.Dense(B, ("M", "N"), ("N",), ("M",))
    b = randn(gen, 30)
    M = fl.alg.jacobi(E.N)
    torch.testing.assert_close(M.weight, 1 / (B * B).sum(0))
    x, info = fl.alg.solve(E.N, b, M=M, tol=1e-10, max_iter=500, return_info=True)
    _, plain = fl.alg.solve(E.N, b, tol=1e-10, max_iter=500, return_info=True)
    torch.testing.assert_close(x, torch.linalg.solve(B.T @ B, b), rtol=1e-6, atol=0)
    assert int(info.iterations) < int(plain.iterations) // 2


@pytest.mark.parametrize("degree", [0, 1, 3, 8])
def test_chebyshev_polynomial_is_minimax(degree):
    """1 - λ p(λ) equioscillates with amplitude 1 / T_{d+1}(σ(0)) on [a, b]."""
    a, b = 0.5, 10.0
    lam = torch.linspace(a, b, 7, dtype=REAL)
    A = fl.Diagonal(lam, ("N",))
    P = fl.alg.polynomial_preconditioner(A, degree, bounds=(a, b))
    torch.testing.assert_close(P(torch.ones(7, dtype=REAL)), torch.as_tensor(P.value(lam.numpy())))
    grid = np.linspace(a, b, 4001)
    residual = 1 - grid * P.value(grid)
    sigma0 = (b + a) / (b - a)
    amplitude = 1 / np.cosh((degree + 1) * np.arccosh(sigma0))
    np.testing.assert_allclose(np.abs(residual).max(), amplitude, rtol=1e-6)


@pytest.mark.parametrize("degree", [1, 2, 5])
def test_least_squares_polynomial_minimises_the_integral(degree):
    a, b = 0.0, 1.0
    P = fl.alg.polynomial_preconditioner(fl.Identity(("N",)), degree, kind="least_squares", bounds=(a, b))
    grid = np.linspace(a, b, 20001)

    def cost(values):
        return np.trapezoid((1 - grid * values) ** 2, grid)

    best = cost(P.value(grid))
    # the normal equations of the monomial basis, independently
    G = np.array([[1 / (j + k + 3) for k in range(degree + 1)] for j in range(degree + 1)])
    h = np.array([1 / (j + 2) for j in range(degree + 1)])
    c = np.linalg.solve(G, h)
    np.testing.assert_allclose(P.value(grid), np.polyval(c[::-1], grid), rtol=1e-6, atol=1e-8)
    for _ in range(3):  # and any perturbation costs more
        assert cost(P.value(grid) + 1e-3 * np.random.default_rng(_).standard_normal() * grid) > best


@pytest.mark.parametrize("kind", ["chebyshev", "least_squares"])
def test_polynomial_preconditioner_saves_iterations_on_sense(kind):
    """Cartesian SENSE, CG on AᴴA + λI: fewer iterations to the same residual, same solution."""
    n = 24
    A = sense_operator(coil_maps(n, 4).to(COMPLEX), cartesian_mask(n, 3.0))
    S = A.N + 1e-3 * fl.Identity(fl.Dim("NxNy"))
    b = A.H(A(randn(torch.Generator().manual_seed(3), n, n, dtype=COMPLEX)))
    M = fl.alg.polynomial_preconditioner(S, 4, kind=kind, generator=torch.Generator().manual_seed(4), max_iter=30)
    x, info = fl.alg.solve(S, b, M=M, tol=1e-7, max_iter=500, return_info=True)
    x_plain, plain = fl.alg.solve(S, b, tol=1e-7, max_iter=500, return_info=True)
    assert bool(info.converged) and bool(plain.converged)
    assert int(info.iterations) * 2 <= int(plain.iterations)
    for sol in (x, x_plain):  # the true residual: the same test for both
        assert float((S(sol) - b).norm()) <= 1.01e-7 * float(b.norm())
    # both within ||S⁻¹|| ||r|| <= tol ||b|| / λmin of the solution
    assert float((x - x_plain).norm()) <= 2 * 1e-7 * float(b.norm()) / 1e-3


def test_polynomial_operator_is_a_pytree_and_transforms():
    gen = torch.Generator().manual_seed(5)
    W = randn(gen, 8, 5)
    E = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    S = E.N + fl.Identity(("N",))
    P = fl.alg.polynomial_preconditioner(S, 3, bounds=(1.0, float(torch.linalg.matrix_norm(W, 2)) ** 2 + 1.01))
    assert P.H == fl.alg.Polynomial(S.H, P.coeffs, P.interval)
    Pm = materialise(P, (5,), REAL)
    torch.testing.assert_close(Pm, Pm.T)  # Hermitian
    assert bool((torch.linalg.eigvalsh(Pm) > 0).all())  # positive definite
    ys = randn(gen, 3, 8)
    w = randn(gen, 5)

    def loss(W, y):
        E = fl.Dense(W, ("M", "N"), ("N",), ("M",))
        return (w * fl.alg.solve(E.N + fl.Identity(("N",)), E.H(y), M=P, tol=1e-12)).sum()

    def closed(W, y):
        return (w * torch.linalg.solve(W.T @ W + torch.eye(5, dtype=REAL), W.T @ y)).sum()

    g = vmap(grad(loss), in_dims=(None, 0))(W, ys)
    torch.testing.assert_close(g, vmap(grad(closed), in_dims=(None, 0))(W, ys), rtol=1e-8, atol=1e-10)


def test_polynomial_preconditioner_refusals():
    with pytest.raises(ValueError, match="0 <= λmin < λmax.*zero or indefinite"):
        fl.alg.polynomial_preconditioner(fl.Zero(("N",)), 2, x0=torch.ones(3))
    with pytest.raises(ValueError, match="degree must be an int >= 0"):
        fl.alg.polynomial_preconditioner(fl.Identity(("N",)), -1, bounds=(0, 1))
    with pytest.raises(ValueError, match="chebyshev needs λmin > 0"):
        fl.alg.polynomial_preconditioner(fl.Identity(("N",)), 2, bounds=(0, 1))
    fl.alg.polynomial_preconditioner(fl.Identity(("N",)), 2, bounds=(0, 1), kind="least_squares")
    with pytest.raises(ValueError, match="kind must be"):
        fl.alg.polynomial_preconditioner(fl.Identity(("N",)), 2, kind="l_inf", bounds=(0, 1))
    with pytest.raises(ShapeError, match="is not square"):
        fl.alg.Polynomial(fl.Dense(torch.ones(2, 3), ("M", "N"), ("N",), ("M",)), (1.0,), (0.0, 1.0))


# ---- opnorm and eig_bounds ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [REAL, COMPLEX])
def test_opnorm_and_eig_bounds_match_dense(dtype):
    gen = torch.Generator().manual_seed(6)
    W = randn(gen, 9, 6, dtype=dtype)
    E = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    s = fl.alg.opnorm(E, tol=1e-13, max_iter=2000, generator=gen)
    torch.testing.assert_close(s, torch.linalg.matrix_norm(W, 2), rtol=1e-6, atol=0)
    S = E.N + fl.Diagonal(torch.linspace(0.5, 1.0, 6, dtype=REAL), ("N",))
    lo, hi = fl.alg.eig_bounds(S, tol=1e-13, max_iter=3000, generator=gen)
    eig = torch.linalg.eigvalsh(W.mH @ W + torch.diag(torch.linspace(0.5, 1.0, 6, dtype=REAL)).to(dtype))
    torch.testing.assert_close(torch.stack([lo, hi]), eig[[0, -1]], rtol=1e-6, atol=0)
    # power iterations approach λmax from below and λmin from above
    lo, hi = fl.alg.eig_bounds(S, tol=None, max_iter=3, generator=gen)
    assert float(hi) <= float(eig[-1]) * (1 + 1e-12) and float(lo) >= float(eig[0]) * (1 - 1e-12)


def test_opnorm_needs_a_linop():
    with pytest.raises(TypeError, match="must be a Linop"):
        fl.alg.opnorm(lambda x: x, torch.ones(2))
