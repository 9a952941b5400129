"""cg and power_method: accuracy, breakdown guards, purity, torch.func transforms."""

import optree
import pytest
import torch

import funclinop as fl
from funclinop.alg import cg, power_method

DTYPES = [torch.float64, torch.complex128]


def randn(gen, *shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype, generator=gen)


def spd_dense(gen, n, dtype):
    """A well-conditioned Hermitian positive definite Dense operator and its matrix."""
    W = randn(gen, n + 5, n, dtype=dtype)
    G = W.mH @ W + n * torch.eye(n, dtype=dtype)
    return fl.Dense(G, ("M", "N"), ("N",), ("M",)), G


@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_solves_spd_dense(dtype):
    gen = torch.Generator().manual_seed(0)
    A, G = spd_dense(gen, 12, dtype)
    b = randn(gen, 12, dtype=dtype)
    b_before = b.clone()
    x, info = cg(A, b, tol=1e-12, max_iter=200, return_info=True)
    torch.testing.assert_close(x, torch.linalg.solve(G, b), rtol=1e-8, atol=1e-10)
    assert bool(info.converged) and 0 < int(info.iterations) <= 200
    assert torch.equal(b, b_before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_from_x0_does_not_mutate(dtype):
    gen = torch.Generator().manual_seed(1)
    A, G = spd_dense(gen, 8, dtype)
    b, x0 = randn(gen, 8, dtype=dtype), randn(gen, 8, dtype=dtype)
    x0_before = x0.clone()
    x = cg(A, b, x0, tol=1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(G, b), rtol=1e-8, atol=1e-10)
    assert torch.equal(x0, x0_before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_sense_normal(dtype):
    """A.N of coil maps ∘ mask (Dense ∘ Diagonal), batch dims treated as one vector."""
    gen = torch.Generator().manual_seed(2)
    C, Nx, Ny = 4, 6, 5
    maps = randn(gen, C, Nx, Ny, dtype=dtype)
    mask = (torch.rand(Nx, Ny, generator=gen) > 0.3).to(dtype) + 0.5
    S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
    A = fl.Chain(S, fl.Diagonal(mask, fl.Dim("CNxNy")))
    lam = 1e-2
    AN = A.N + lam * fl.Identity(fl.Dim("NxNy"))
    b = randn(gen, Nx, Ny, dtype=dtype)
    x = cg(AN, b, tol=1e-12, max_iter=500)
    Amat = (maps * mask).reshape(C, Nx * Ny, 1) * torch.eye(Nx * Ny, dtype=dtype)
    Amat = Amat.reshape(C * Nx * Ny, Nx * Ny)
    G = Amat.mH @ Amat + lam * torch.eye(Nx * Ny, dtype=dtype)
    want = torch.linalg.solve(G, b.reshape(-1)).reshape(Nx, Ny)
    torch.testing.assert_close(x, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_preconditioner(dtype):
    gen = torch.Generator().manual_seed(3)
    n = 30
    scales = torch.logspace(0, 4, n, dtype=torch.float64).to(dtype)
    B = randn(gen, n, n, dtype=dtype) * 0.1
    G = torch.diag(scales) + B.mH @ B
    A = fl.Dense(G, ("M", "N"), ("N",), ("M",))
    M = fl.Diagonal(1 / torch.diagonal(G), ("N",))
    b = randn(gen, n, dtype=dtype)
    want = torch.linalg.solve(G, b)
    x, info = cg(A, b, M=M, tol=1e-12, max_iter=200, return_info=True)
    torch.testing.assert_close(x, want, rtol=1e-8, atol=1e-10)
    _, plain = cg(A, b, tol=1e-12, max_iter=200, return_info=True)
    assert int(info.iterations) < int(plain.iterations)


@pytest.mark.parametrize("tol", [1e-6, None])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_zero_rhs_gives_zeros(dtype, tol):
    gen = torch.Generator().manual_seed(4)
    A, _ = spd_dense(gen, 5, dtype)
    b = torch.zeros(5, dtype=dtype)
    assert torch.equal(cg(A, b, tol=tol, max_iter=10), b)
    assert torch.equal(cg(A, b, randn(gen, 5, dtype=dtype), tol=tol, max_iter=10), b)


@pytest.mark.parametrize("tol", [1e-8, None])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_singular_semidefinite_is_finite(dtype, tol):
    gen = torch.Generator().manual_seed(5)
    W = randn(gen, 3, 8, dtype=dtype)  # rank 3: A.N on 8 dims is singular
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    consistent = A.H(randn(gen, 3, dtype=dtype))
    x = cg(A.N, consistent, tol=tol, max_iter=50)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(A.N(x), consistent, rtol=1e-6, atol=1e-8)
    inconsistent = randn(gen, 8, dtype=dtype)
    assert torch.isfinite(cg(A.N, inconsistent, tol=tol, max_iter=50)).all()
    zero_op = fl.Zero(("N",))
    assert torch.isfinite(cg(zero_op, inconsistent, tol=tol, max_iter=5)).all()


def test_cg_exact_convergence_stops_cleanly():
    """A diagonal system converges exactly: later iterations must not divide 0 by 0."""
    A = fl.Diagonal(torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64), ("N",))
    b = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    x, info = cg(A, b, tol=None, max_iter=20, return_info=True)
    torch.testing.assert_close(x, b / 2)
    assert int(info.iterations) == 1


def test_cg_fixed_iterations_under_grad():
    gen = torch.Generator().manual_seed(6)
    A, G = spd_dense(gen, 6, torch.float64)
    b = randn(gen, 6)
    c = randn(gen, 6)

    def loss(b):
        return torch.dot(c, cg(A, b, tol=None, max_iter=30))

    g = torch.func.grad(loss)(b)
    torch.testing.assert_close(g, torch.linalg.solve(G, c), rtol=1e-8, atol=1e-10)

    def loss_of_op(op):
        return torch.dot(c, cg(op, b, tol=None, max_iter=30))

    gA = torch.func.grad(loss_of_op)(A)
    assert type(gA) is fl.Dense
    x, y = torch.linalg.solve(G, b), torch.linalg.solve(G, c)
    torch.testing.assert_close(gA.weight, -torch.outer(y, x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cg_fixed_iterations_under_vmap(dtype):
    gen = torch.Generator().manual_seed(7)
    A, G = spd_dense(gen, 6, dtype)
    bs = randn(gen, 3, 6, dtype=dtype)
    bs[1] = 0  # one problem with a zero right-hand side
    xs = torch.func.vmap(lambda b: cg(A, b, tol=None, max_iter=40))(bs)
    want = torch.linalg.solve(G, bs.T).T
    torch.testing.assert_close(xs, want, rtol=1e-8, atol=1e-10)
    assert torch.isfinite(xs).all()


def test_cg_vmap_over_operators():
    gen = torch.Generator().manual_seed(8)
    ops = [spd_dense(gen, 5, torch.float64) for _ in range(2)]
    stacked = optree.tree_map(lambda *ws: torch.stack(ws), *(op for op, _ in ops))
    b = randn(gen, 5)
    xs = torch.func.vmap(lambda op: cg(op, b, tol=None, max_iter=30))(stacked)
    for x, (_, G) in zip(xs, ops):
        torch.testing.assert_close(x, torch.linalg.solve(G, b), rtol=1e-8, atol=1e-10)


def test_cg_accepts_callables_and_batched_rhs():
    gen = torch.Generator().manual_seed(9)
    _, G = spd_dense(gen, 4, torch.float64)
    B = randn(gen, 3, 4)
    X = cg(lambda x: x @ G.T, B, tol=1e-12)
    # The whole (3, 4) tensor is one vector of a block-diagonal system.
    torch.testing.assert_close(X, torch.linalg.solve(G, B.T).T, rtol=1e-8, atol=1e-10)


def test_cg_rejects_bad_x0():
    A = fl.Identity(("N",))
    with pytest.raises(ValueError, match="x0"):
        cg(A, torch.ones(3), torch.ones(4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_power_method_matches_eigvalsh(dtype):
    gen = torch.Generator().manual_seed(10)
    W = randn(gen, 9, 6, dtype=dtype)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    lam, v = power_method(A.N, max_iter=5000, tol=1e-14, generator=gen)
    want = torch.linalg.eigvalsh(W.mH @ W).max()
    torch.testing.assert_close(lam, want, rtol=1e-8, atol=0)
    assert lam.dtype == torch.float64 and v.dtype == dtype and v.shape == (6,)
    torch.testing.assert_close(torch.linalg.vector_norm(v), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(A.N(v), lam * v, rtol=1e-5, atol=1e-5)


def test_power_method_negative_dominant_eigenvalue():
    D = fl.Diagonal(torch.tensor([1.0, -3.0, 2.0], dtype=torch.float64), ("N",))
    lam, v = power_method(D, torch.ones(3, dtype=torch.float64), max_iter=500, tol=1e-14)
    torch.testing.assert_close(lam, torch.tensor(-3.0, dtype=torch.float64))
    torch.testing.assert_close(v.abs(), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("tol", [1e-6, None])
def test_power_method_zero_operator(tol):
    Z = fl.Dense(torch.zeros(4, 4, dtype=torch.complex128), ("M", "N"), ("N",), ("M",))
    lam, v = power_method(Z, max_iter=10, tol=tol, generator=torch.Generator().manual_seed(0))
    assert float(lam) == 0.0 and torch.isfinite(v).all() and v.shape == (4,)
    lam, v = power_method(Z, torch.zeros(4, dtype=torch.complex128), max_iter=10, tol=tol)
    assert float(lam) == 0.0 and torch.isfinite(v).all()


def test_power_method_is_pure_and_reproducible():
    gen = torch.Generator().manual_seed(11)
    A = fl.Dense(randn(gen, 5, 4), ("M", "N"), ("N",), ("M",))
    x0 = randn(gen, 4)
    before = x0.clone()
    a = power_method(A.N, x0, max_iter=50)
    b = power_method(A.N, x0, max_iter=50)
    assert torch.equal(x0, before) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(power_method(A.N, generator=g1)[1], power_method(A.N, generator=g2)[1])


def test_power_method_fixed_iterations_under_transforms():
    gen = torch.Generator().manual_seed(12)
    W = randn(gen, 7, 4)
    x0 = randn(gen, 4)

    def top(W):
        A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
        return power_method(A.N, x0, max_iter=300, tol=None)[0]

    # d sigma_max^2 / dW = 2 sigma u v^T
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    torch.testing.assert_close(torch.func.grad(top)(W), 2 * S[0] * torch.outer(U[:, 0], Vh[0]),
                               rtol=1e-6, atol=1e-8)
    Ws = torch.stack([W, 2 * W])
    lams = torch.func.vmap(top)(Ws)
    torch.testing.assert_close(lams, torch.stack([S[0] ** 2, 4 * S[0] ** 2]), rtol=1e-8, atol=0)


def test_power_method_needs_sizes():
    D = fl.Identity(("N",))
    with pytest.raises(ValueError, match="'N'"):
        power_method(D)
    with pytest.raises(TypeError, match="x0"):
        power_method(lambda x: x)
