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


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_cg_rejects_non_finite_b_or_x0(bad):
    A = fl.Diagonal(torch.tensor([1.0, 2.0]), ("N",))
    with pytest.raises(ValueError, match=r"b \(2,\) has non-finite"):
        cg(A, torch.tensor([bad, 1.0]))
    with pytest.raises(ValueError, match=r"x0 \(2,\) has non-finite"):
        cg(A, torch.ones(2), torch.tensor([1.0, bad]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_cg_fixed_mode_non_finite_b_is_nan(bad):
    """tol=None cannot inspect b: the result is NaN and unconverged, never 0 and converged."""
    gen = torch.Generator().manual_seed(15)
    A, G = spd_dense(gen, 4, torch.float64)
    b = randn(gen, 4)
    b[2] = bad
    x, info = cg(A, b, tol=None, max_iter=10, return_info=True)
    assert torch.isnan(x).all() and torch.isnan(info.residual_norm) and not bool(info.converged)
    bs = torch.stack([randn(gen, 4), b])
    xs = torch.func.vmap(lambda b: cg(A, b, tol=None, max_iter=10))(bs)
    torch.testing.assert_close(xs[0], torch.linalg.solve(G, bs[0]), rtol=1e-8, atol=1e-10)
    assert torch.isnan(xs[1]).all()


def test_cg_overflowing_norm_never_converges():
    """A finite b whose squared norm overflows float32: no false claim (was tol²·inf)."""
    A = fl.Diagonal(torch.tensor([1.0, 2.0]), ("N",))
    x, info = cg(A, torch.tensor([1e30, 1.0]), return_info=True)
    assert torch.isnan(x).all() and not bool(info.converged)


@pytest.mark.parametrize("tol", [1e-8, None])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_cg_non_finite_operator_output_is_nan(bad, tol):
    """A non-finite value appearing mid-solve stops it: NaN, unconverged."""
    gen = torch.Generator().manual_seed(16)
    A, _ = spd_dense(gen, 6, torch.float64)
    calls = []

    def flaky(x):
        calls.append(1)
        y = A(x)
        return y if len(calls) < 3 else y * bad

    x, info = cg(flaky, randn(gen, 6), tol=tol, max_iter=20, return_info=True)
    assert torch.isnan(x).all() and torch.isnan(info.residual_norm) and not bool(info.converged)
    assert len(calls) == (3 if tol else 20)
    M = fl.Diagonal(torch.tensor([1.0, bad, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64), ("N",))
    x, info = cg(A, randn(gen, 6), M=M, tol=tol, max_iter=20, return_info=True)
    assert torch.isnan(x).all() and not bool(info.converged)


@pytest.mark.parametrize("tol", [1e-8, None])
def test_cg_inconsistent_two_by_two(tol):
    """Diagonal([1, 0]), b = [1, 1]: no solution. The first step (x = [2, 2]) leaves
    the residual norm at sqrt(2) and the next direction [0, 2] is null, so the
    solve stops with the start, the smallest-residual iterate: finite, unconverged."""
    A = fl.Diagonal(torch.tensor([1.0, 0.0], dtype=torch.float64), ("N",))
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    x, info = cg(A, b, tol=tol, max_iter=50, return_info=True)
    assert torch.equal(x, torch.zeros(2, dtype=torch.float64))
    assert int(info.iterations) == 0 and not bool(info.converged)
    torch.testing.assert_close(info.residual_norm, torch.tensor(2.0, dtype=torch.float64).sqrt())


def inconsistent_systems():
    gen = torch.Generator().manual_seed(17)
    d = torch.cat([torch.linspace(1, 2, 5, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    diagonal = fl.Diagonal(d, ("N",)), torch.diag(d), torch.ones(6, dtype=torch.float64)
    yield pytest.param(*diagonal, 1e-8, id="diagonal-tol")
    yield pytest.param(*diagonal, None, id="diagonal-fixed")
    for dtype in DTYPES:
        W = randn(gen, 3, 8, dtype=dtype)  # A.N on 8 dims has rank 3
        op = fl.Dense(W, ("M", "N"), ("N",), ("M",)).N
        b = randn(gen, 8, dtype=dtype)
        yield pytest.param(op, W.mH @ W, b, 1e-8, id=f"dense-{dtype}-tol")
        yield pytest.param(op, W.mH @ W, b, None, id=f"dense-{dtype}-fixed")


@pytest.mark.parametrize("A, G, b, tol", list(inconsistent_systems()))
def test_cg_inconsistent_singular_stays_bounded(A, G, b, tol):
    """b outside the range: CG's own iterates diverge (the diagonal's overflowed to
    NaN; the dense ones jump ~1e15 along a direction null to rounding). cg stops,
    never claims convergence, and with a tol returns an iterate no worse than
    the start's with its true residual."""
    x, info = cg(A, b, tol=tol, max_iter=300, return_info=True)
    assert torch.isfinite(x).all() and not bool(info.converged)
    if tol is None and not isinstance(A, fl.Diagonal):
        return  # the fixed mode selects by the recurrence residual alone (see cg's Notes)
    true_residual = torch.linalg.vector_norm(b - G @ x)
    torch.testing.assert_close(info.residual_norm, true_residual, rtol=1e-6, atol=0)
    # The residual keeps b's null-space component, and is no larger than the start's.
    null_part = b - G @ (torch.linalg.pinv(G, hermitian=True) @ b)
    assert float(torch.linalg.vector_norm(null_part)) <= float(true_residual) <= float(torch.linalg.vector_norm(b))
    if isinstance(A, fl.Diagonal):
        # Null directions are exactly null here: the smallest-residual iterate is bounded.
        assert float(torch.linalg.vector_norm(x)) <= 10 * float(torch.linalg.vector_norm(b))


@pytest.mark.parametrize("M", [None, "jacobi"])
def test_cg_ill_conditioned_pd_is_not_stopped_as_divergent(M):
    """cond(A) = 1e16: residuals rise and fall on the way, but stay within sqrt(cond(A))
    of the best, so the divergence stop must not fire before convergence."""
    d = torch.logspace(-16, 0, 20, dtype=torch.float64)
    A = fl.Diagonal(d, ("N",))
    M = None if M is None else fl.Diagonal(1 / (d * torch.linspace(1, 1.5, 20, dtype=torch.float64)), ("N",))
    b = torch.ones(20, dtype=torch.float64)
    x, info = cg(A, b, M=M, tol=1e-10, max_iter=1000, return_info=True)
    assert bool(info.converged)
    # The recurrence residual drifts from the true one by about eps * cond(A) * |x| / |b|.
    assert float(torch.linalg.vector_norm(b - d * x)) <= 1e-9 * float(torch.linalg.vector_norm(b))


def test_cg_and_power_method_compile_fullgraph():
    gen = torch.Generator().manual_seed(19)
    A, G = spd_dense(gen, 5, torch.float64)
    b, x0 = randn(gen, 5), randn(gen, 5)
    solve = torch.compile(lambda A, b: cg(A, b, tol=None, max_iter=8, return_info=True), fullgraph=True, backend="eager")
    x, info = solve(A, b)
    torch.testing.assert_close(x, torch.linalg.solve(G, b), rtol=1e-8, atol=1e-10)
    # the compiled loop equals the eager one (a few iterations: dynamo unrolls them)
    top = torch.compile(lambda A, x0: power_method(A, x0, tol=None, max_iter=12), fullgraph=True, backend="eager")
    want = power_method(A, x0, tol=None, max_iter=12)
    torch.testing.assert_close(top(A, x0)[0], want[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(top(A, x0)[1], want[1], rtol=1e-12, atol=1e-14)


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


ZERO_OPERATORS = {
    "Zero": lambda dtype: fl.Zero(("N",)),
    "Diagonal": lambda dtype: fl.Diagonal(torch.zeros(4, dtype=dtype), ("N",)),
    "Dense": lambda dtype: fl.Dense(torch.zeros(4, 4, dtype=dtype), ("M", "N"), ("N",), ("M",)),
}


@pytest.mark.parametrize("tol", [1e-6, None])
@pytest.mark.parametrize("make", ZERO_OPERATORS.values(), ids=ZERO_OPERATORS.keys())
def test_power_method_zero_operator(make, tol):
    """Eigenvalue 0 and the normalised start vector: no NaN, no false magnitude."""
    Z = make(torch.complex128)
    x0 = torch.tensor([1.0, 2.0, 0.0, 2.0], dtype=torch.complex128)
    lam, v = power_method(Z, x0, max_iter=10, tol=tol)
    assert float(lam) == 0.0 and lam.dtype == torch.float64
    torch.testing.assert_close(v, x0 / 3)


@pytest.mark.parametrize("bad", [0.0, float("nan"), float("inf")])
def test_power_method_rejects_zero_or_non_finite_start(bad):
    D = fl.Diagonal(torch.tensor([1.0, -3.0, 2.0]), ("N",))
    x0 = torch.zeros(3)
    x0[1] = bad
    with pytest.raises(ValueError, match="x0"):
        power_method(D, x0)


def test_power_method_fixed_mode_zero_start_gives_nan():
    """tol=None cannot inspect x0: a zero start is NaN, never a zero "unit" vector."""
    D = fl.Diagonal(torch.tensor([1.0, -3.0, 2.0]), ("N",))
    lam, v = power_method(D, torch.zeros(3), max_iter=5, tol=None)
    assert torch.isnan(lam) and torch.isnan(v).all()


def hermitian(gen, eigenvalues, dtype):
    """Q diag(eigenvalues) Qᴴ for a random unitary Q, as a Dense operator and a matrix."""
    n = len(eigenvalues)
    Q, _ = torch.linalg.qr(randn(gen, n, n, dtype=torch.complex128 if dtype.is_complex else torch.float64))
    H = Q @ torch.diag(torch.tensor(eigenvalues, dtype=Q.dtype)) @ Q.mH
    H = ((H + H.mH) / 2).to(dtype)
    return fl.Dense(H, ("M", "N"), ("N",), ("M",)), H


SPECTRA = {
    "positive": [5.0, 3.0, 2.0, 1.0, 0.5, 0.1, 0.0],
    "negative-dominant": [-5.0, 3.0, -2.5, 1.0, 0.5, -0.1, 2.0],
    "plus-minus": [4.0, -4.0, 2.5, -2.0, 1.0, 0.3, -0.7],
}
# tol, the relative accuracy of the eigenvalue, and of the eigenvector residual
# (about sqrt(tol): the eigenvalue converges twice as fast as the vector).
ACCURACY = {torch.float32: (1e-6, 1e-5, 3e-3), torch.float64: (1e-13, 1e-10, 1e-6)}


@pytest.mark.parametrize("fixed", [False, True], ids=["tol", "fixed"])
@pytest.mark.parametrize("spectrum", SPECTRA.values(), ids=SPECTRA.keys())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128], ids=str)
def test_power_method_hermitian_matches_eigvalsh(dtype, spectrum, fixed):
    gen = torch.Generator().manual_seed(13)
    A, H = hermitian(gen, spectrum, dtype)
    real = H.real.dtype
    tol, rtol, vtol = ACCURACY[real]
    want = torch.linalg.eigvalsh(H.to(torch.complex128 if dtype.is_complex else torch.float64))
    top = want.abs().max()
    for seed in range(3):
        kw = dict(max_iter=400, tol=None) if fixed else dict(max_iter=2000, tol=tol)
        lam, v = power_method(A, generator=torch.Generator().manual_seed(seed), **kw)
        assert lam.dtype == real and v.dtype == dtype
        # The eigenvalue is one of largest magnitude (either sign when both are).
        nearest = want[(want - lam.double()).abs().argmin()]
        torch.testing.assert_close(lam.double(), nearest, rtol=rtol, atol=0)
        torch.testing.assert_close(lam.double().abs(), top, rtol=rtol, atol=0)
        torch.testing.assert_close(torch.linalg.vector_norm(v), torch.ones((), dtype=real))
        assert float(torch.linalg.vector_norm(H @ v - lam * v)) <= vtol * float(top)


@pytest.mark.parametrize("x0", [None, "ones"])
def test_power_method_plus_minus_pair(x0):
    """±3 both dominant: the iterates alternate, yet the magnitude and an eigenpair come out."""
    D = fl.Diagonal(torch.tensor([1.0, -3.0, 3.0, 0.5], dtype=torch.float64), ("N",))
    for seed in range(5):
        start = torch.ones(4, dtype=torch.float64) if x0 else None
        lam, v = power_method(D, start, tol=1e-10, max_iter=500, generator=torch.Generator().manual_seed(seed))
        assert abs(abs(float(lam)) - 3.0) <= 1e-8
        # The sign is the eigenvector's with the larger start component (a tie picks +).
        if x0:
            assert float(lam) > 0
        assert float(torch.linalg.vector_norm(D(v) - lam * v)) <= 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9, 4), (4, 9)], ids=["tall", "wide"])
def test_power_method_largest_singular_value(shape, dtype):
    """What the docstring promises for a non-square (or non-Hermitian) B: sqrt of B.N's top eigenvalue."""
    gen = torch.Generator().manual_seed(14)
    W = randn(gen, *shape, dtype=dtype)
    B = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    lam, _ = power_method(B.N, generator=gen, tol=1e-14, max_iter=5000)
    torch.testing.assert_close(lam.sqrt(), torch.linalg.svdvals(W)[0], rtol=1e-8, atol=0)


def test_power_method_refuses_non_square_operator():
    B = fl.Dense(torch.randn(7, 4), ("M", "N"), ("N",), ("M",))
    with pytest.raises(fl.ShapeError, match=r"Dense.*\(4,\).*\(7,\)"):
        power_method(B)


def test_power_method_non_finite_operator_is_nan():
    D = fl.Diagonal(torch.tensor([1.0, float("nan"), 2.0]), ("N",))
    calls = []

    def A(x):
        calls.append(1)
        return D(x)

    lam, v = power_method(A, torch.ones(3), max_iter=50)
    assert torch.isnan(lam) and len(calls) == 2  # stops at once, does not run max_iter
    assert torch.isnan(power_method(D, torch.ones(3), max_iter=5, tol=None)[0])


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
