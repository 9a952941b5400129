"""solve, minres, lsqr: against scipy and closed forms, implicit gradients, transforms, bad input."""

import numpy as np
import pytest
import torch
import torch.utils._pytree as tp
from torch.func import grad, jacrev, jvp, vmap

import funclinop as fl
from funclinop.demo import sense_operator
from funclinop.errors import ShapeError
from funclinop.testing.registry import FACTORIES, NotApplicable

sla = pytest.importorskip("scipy.sparse.linalg")

REAL, COMPLEX = torch.float64, torch.complex128
DTYPES = [torch.float32, torch.float64, torch.complex64, torch.complex128]


def randn(gen, *shape, dtype=REAL):
    if dtype.is_complex:
        return torch.complex(randn(gen, *shape, dtype=dtype.to_real()), randn(gen, *shape, dtype=dtype.to_real()))
    return torch.randn(*shape, dtype=dtype, generator=gen)


def dense(W):
    return fl.Dense(W, ("M", "N"), ("N",), ("M",))


def tight(dtype):
    """A tolerance the dtype can reach, and the agreement to expect at it."""
    single = dtype in (torch.float32, torch.complex64)
    return (1e-6, 1e-3) if single else (1e-12, 1e-8)


def hermitian(gen, n, dtype, definite):
    W = randn(gen, n, n, dtype=dtype)
    if definite:
        return W.mH @ W + n * torch.eye(n, dtype=dtype)
    return W + W.mH  # indefinite


# ---- forward: the same answers as scipy ----------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["cg", "minres"])
def test_square_methods_match_scipy(method, dtype):
    gen = torch.Generator().manual_seed(0)
    G = hermitian(gen, 12, dtype, definite=method == "cg")
    b = randn(gen, 12, dtype=dtype)
    tol, rtol = tight(dtype)
    x, info = fl.alg.solve(dense(G), b, method=method, tol=tol, max_iter=200, return_info=True)
    Gn, bn = G.to(torch.complex128 if dtype.is_complex else REAL).numpy(), b.numpy().astype(G.numpy().dtype)
    if method == "minres" and dtype.is_complex:
        # scipy's minres takes np.inner without conjugation: it refuses complex Hermitian systems
        ref = np.linalg.solve(Gn, bn)
    else:
        ref, flag = getattr(sla, method)(Gn.astype(bn.dtype), bn, rtol=1e-13, maxiter=500)
        assert flag == 0
    np.testing.assert_allclose(x.numpy(), ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    assert x.dtype == dtype and bool(info.converged)


@pytest.mark.parametrize("damp", [0.0, 0.5])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(15, 8), (5, 8)], ids=["tall", "wide"])
def test_lsqr_matches_scipy(shape, dtype, damp):
    gen = torch.Generator().manual_seed(1)
    W, y = randn(gen, *shape, dtype=dtype), randn(gen, shape[0], dtype=dtype)
    tol, rtol = tight(dtype)
    x, info = fl.alg.solve(dense(W), y, method="lsqr", damp=damp, tol=tol, max_iter=200, return_info=True)
    wide = torch.complex128 if dtype.is_complex else REAL
    ref = sla.lsqr(W.to(wide).numpy(), y.to(wide).numpy(), damp=damp, atol=1e-15, btol=1e-15, iter_lim=500)[0]
    np.testing.assert_allclose(x.numpy(), ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    assert x.dtype == dtype and bool(info.converged)
    assert x.shape == (shape[1],)


def test_damp_means_the_same_in_every_method():
    """cg/minres on (A.N + damp² I) and lsqr on A with damp solve one problem."""
    gen = torch.Generator().manual_seed(2)
    E, y = dense(randn(gen, 9, 6, dtype=COMPLEX)), randn(gen, 9, dtype=COMPLEX)
    xs = [fl.alg.solve(E.N, E.H(y), method=m, damp=0.7, tol=1e-12) for m in ("cg", "minres")]
    xs.append(fl.alg.solve(E, y, method="lsqr", damp=0.7, tol=1e-12))
    for x in xs[1:]:
        torch.testing.assert_close(x, xs[0], rtol=1e-9, atol=1e-12)


def test_public_minres_and_lsqr_with_x0():
    gen = torch.Generator().manual_seed(3)
    H, b = hermitian(gen, 10, COMPLEX, definite=False), randn(gen, 10, dtype=COMPLEX)
    x0 = randn(gen, 10, dtype=COMPLEX)
    x, info = fl.alg.minres(dense(H), b, x0, tol=1e-12, max_iter=100, return_info=True)
    torch.testing.assert_close(x, torch.linalg.solve(H, b), rtol=1e-9, atol=1e-12)
    assert bool(info.converged) and isinstance(info, fl.alg.SolveInfo)
    W, y = randn(gen, 12, 10, dtype=COMPLEX), randn(gen, 12, dtype=COMPLEX)
    want = torch.linalg.solve(W.mH @ W + 0.25 * torch.eye(10, dtype=COMPLEX), W.mH @ y)
    # damping acts on x, not on x - x0: the start does not change the answer
    torch.testing.assert_close(fl.alg.lsqr(dense(W), y, x0, damp=0.5, tol=1e-12), want, rtol=1e-9, atol=1e-12)


def test_lsqr_minimum_norm_for_wide_systems():
    gen = torch.Generator().manual_seed(4)
    W, y = randn(gen, 4, 9), randn(gen, 4)
    torch.testing.assert_close(fl.alg.lsqr(dense(W), y, tol=1e-13), torch.linalg.pinv(W) @ y, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["cg", "minres", "lsqr"])
def test_preconditioned_and_fixed_iterations(method):
    gen = torch.Generator().manual_seed(5)
    n = 20
    G = torch.diag(torch.logspace(0, 3, n, dtype=REAL)) + 0.1 * hermitian(gen, n, REAL, definite=True) / n
    b = randn(gen, n)
    A = dense(G) if method != "lsqr" else dense(torch.linalg.cholesky(G).mH)
    rhs = b if method != "lsqr" else torch.linalg.solve(torch.linalg.cholesky(G), b)
    want = torch.linalg.solve(G, b)
    if method != "lsqr":
        M = fl.Diagonal(1 / torch.diagonal(G), ("N",))
        x, info = fl.alg.solve(A, rhs, method=method, M=M, tol=1e-12, max_iter=200, return_info=True)
        _, plain = fl.alg.solve(A, rhs, method=method, tol=1e-12, max_iter=200, return_info=True)
        torch.testing.assert_close(x, want, rtol=1e-8, atol=1e-10)
        assert int(info.iterations) < int(plain.iterations)
    # the fixed-iteration mode: exactly max_iter steps, no data-dependent branch
    x = fl.alg.solve(A, rhs, method=method, tol=None, max_iter=200)
    torch.testing.assert_close(x, want, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("tol", [1e-8, None])
@pytest.mark.parametrize("method", ["cg", "minres", "lsqr"])
def test_zero_rhs_and_breakdown_are_clean(method, tol):
    A = fl.Diagonal(torch.tensor([2.0, 2.0, 2.0], dtype=REAL), ("N",))
    b = torch.zeros(3, dtype=REAL)
    x, info = fl.alg.solve(A, b, method=method, tol=tol, max_iter=10, return_info=True)
    assert torch.equal(x, b) and bool(info.converged)
    # an exact solution after one step (Lanczos/bidiagonalisation breakdown): no NaN after it
    b = torch.tensor([1.0, 2.0, 3.0], dtype=REAL)
    x, info = fl.alg.solve(A, b, method=method, tol=tol, max_iter=10, return_info=True)
    torch.testing.assert_close(x, b / 2)
    assert int(info.iterations) == 1 and bool(info.converged)


@pytest.mark.parametrize("method", ["minres", "lsqr"])
def test_non_finite_operator_gives_nan_never_converged(method):
    A = fl.Diagonal(torch.tensor([1.0, float("inf"), 2.0], dtype=REAL), ("N",))
    x, info = fl.alg.solve(A, torch.ones(3, dtype=REAL), method=method, tol=1e-8, return_info=True)
    assert torch.isnan(x).all() and torch.isnan(info.residual_norm) and not bool(info.converged)


# ---- implicit gradients against the closed form ---------------------------------------


def closed_normal(W, w, y, damp=0.0):
    """x = (WᴴW + diag(w) + damp² I)⁻¹ Wᴴ y, differentiable by torch."""
    n = W.shape[1]
    G = W.mH @ W + torch.diag(w).to(W.dtype) + damp**2 * torch.eye(n, dtype=W.dtype)
    return torch.linalg.solve(G, W.mH @ y)


def closed_lsqr(W, w, y, damp):
    """x = argmin ||W diag(w) x - y||² + damp² ||x||²."""
    K = W * w
    return torch.linalg.solve(K.mH @ K + damp**2 * torch.eye(K.shape[1], dtype=K.dtype), K.mH @ y)


def ours_normal(method):
    def f(W, w, y, damp=0.0):
        E = dense(W)
        return fl.alg.solve(E.N + fl.Diagonal(w, ("N",)), E.H(y), method=method, damp=damp, tol=1e-13, max_iter=300)

    return f


def ours_lsqr(W, w, y, damp):
    K = fl.Chain(fl.Diagonal(w, ("N",)), dense(W))
    return fl.alg.solve(K, y, method="lsqr", damp=damp, tol=1e-13, max_iter=300)


def problem(dtype, seed=6, m=9, n=6):
    gen = torch.Generator().manual_seed(seed)
    W, y = randn(gen, m, n, dtype=dtype), randn(gen, m, dtype=dtype)
    w = torch.rand(n, dtype=REAL, generator=gen) + 0.5
    c = randn(gen, n, dtype=dtype)
    damp = torch.tensor(0.3, dtype=REAL)
    return W, w, y, c, damp


def loss_of(solution, c):
    # real, nonlinear in x, and sensitive to phase for complex x
    return lambda *args: (c * solution(*args)).real.sum() + solution(*args).abs().square().sum()


def assert_rel(got, want, rtol=1e-6):
    # a zero reference (a leaf the loss does not depend on, e.g. A inside a
    # degree-0 polynomial) must be matched by a gradient that is zero too
    for g, r in zip(got, want):
        assert float((g - r).norm()) <= rtol * float(r.norm()) + 1e-12 * g.numel()


@pytest.mark.parametrize("dtype", [REAL, COMPLEX])
@pytest.mark.parametrize("method", ["cg", "minres", "lsqr"])
def test_implicit_gradient_equals_closed_form(method, dtype):
    """w.r.t. b, a Diagonal weight, a Dense weight and damp, to 1e-6 relative (float64)."""
    W, w, y, c, damp = problem(dtype)
    ours, closed = (ours_lsqr, closed_lsqr) if method == "lsqr" else (ours_normal(method), closed_normal)
    argnums = (0, 1, 2, 3)
    got = grad(loss_of(ours, c), argnums=argnums)(W, w, y, damp)
    want = grad(loss_of(closed, c), argnums=argnums)(W, w, y, damp)
    assert_rel(got, want)
    # b alone (the backward then needs no vjp through A)
    assert_rel([grad(loss_of(ours, c), argnums=2)(W, w, y, damp)], [want[2]])


@pytest.mark.parametrize("method", ["cg", "lsqr"])
def test_second_order_gradients(method):
    """The backward is built from solve and vjps, so it differentiates again."""
    W, w, y, c, damp = problem(REAL, seed=17, m=6, n=4)
    ours, closed = (ours_lsqr, closed_lsqr) if method == "lsqr" else (ours_normal(method), closed_normal)

    def mixed(solution):
        inner = grad(lambda W, w, y: (solution(W, w, y, damp) ** 3).sum(), argnums=1)
        return grad(lambda W, w, y: (c.real * inner(W, w, y)).sum(), argnums=(0, 1, 2))(W, w, y)

    assert_rel(mixed(ours), mixed(closed))


@pytest.mark.parametrize("method", ["cg", "lsqr"])
def test_plain_backward(method):
    W, w, y, c, damp = problem(COMPLEX, seed=7)
    ours, closed = (ours_lsqr, closed_lsqr) if method == "lsqr" else (ours_normal(method), closed_normal)
    leaves = [t.clone().requires_grad_() for t in (W, w, y, damp)]
    loss_of(ours, c)(*leaves).backward()
    want = grad(loss_of(closed, c), argnums=(0, 1, 2, 3))(W, w, y, damp)
    assert_rel([t.grad for t in leaves], want)


def test_gradient_of_a_learned_operator_is_an_operator():
    """torch.func.grad with respect to the operator returns the operator's type."""
    W, w, y, c, _ = problem(REAL, seed=8)
    A = dense(W).N + fl.Diagonal(w, ("N",))
    b = dense(W).H(y)
    g = grad(lambda A: (c * fl.alg.solve(A, b, tol=1e-13)).sum())(A)
    assert type(g) is fl.Add
    x = torch.linalg.solve(W.T @ W + torch.diag(w), b)
    lam = torch.linalg.solve(W.T @ W + torch.diag(w), c)
    torch.testing.assert_close(g.linops[1].weight, -lam * x, rtol=1e-8, atol=1e-12)


def test_sense_coil_maps_gradient_with_integer_leaves():
    """Learning coil maps through a CG-SENSE solve; the sampling indices (integer
    leaves) ride along without gradients."""
    gen = torch.Generator().manual_seed(9)
    maps = randn(gen, 3, 4, 5, dtype=torch.complex128)
    mask = torch.rand(4, 5, generator=gen) > 0.4
    A = sense_operator(maps, mask)
    y = A(randn(gen, 4, 5, dtype=torch.complex128))

    def loss(maps):
        B = sense_operator(maps, mask)
        return fl.alg.solve(B.N, B.H(y), damp=0.1, tol=1e-13, max_iter=200).abs().square().sum()

    def closed(maps):
        basis = torch.eye(20, dtype=torch.complex128).reshape(20, 4, 5)
        Bm = vmap(sense_operator(maps, mask))(basis).reshape(20, -1).T
        G = Bm.mH @ Bm + 0.01 * torch.eye(20, dtype=torch.complex128)
        return torch.linalg.solve(G, Bm.mH @ y.reshape(-1)).abs().square().sum()

    assert_rel([grad(loss)(maps)], [grad(closed)(maps)])


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_lsqr_gradients_over_the_catalogue(name):
    """Every operator type: the damped least-squares solution and the gradient with
    respect to each floating leaf equal those of the materialised matrix."""
    factory = FACTORIES[name]
    dtype = COMPLEX if COMPLEX in factory.dtypes else REAL
    gen = torch.Generator().manual_seed(10)
    dims = {"Nx": 3, "Ny": 4}
    try:
        A = factory.make(gen, dtype, dims, set())
    except NotApplicable:
        pytest.skip(f"{name} does not apply to {dims}")
    leaves, spec = tp.tree_flatten(A)
    mask = [isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) for t in leaves]
    floats = [t for t, m in zip(leaves, mask) if m]

    def build(fs):
        it = iter(fs)
        return tp.tree_unflatten([next(it) if m else t for t, m in zip(leaves, mask)], spec)

    x_shape = tuple(dims.values())
    y = randn(gen, *A(torch.zeros(x_shape, dtype=dtype)).shape, dtype=dtype)
    c = randn(gen, *x_shape, dtype=dtype)

    def ours(fs):
        x = fl.alg.solve(build(fs), y, method="lsqr", damp=0.5, tol=1e-13, max_iter=500)
        return (c * x).real.sum() + x.abs().square().sum()

    def closed(fs):
        op = build(fs)
        basis = torch.eye(12, dtype=dtype).reshape((12,) + x_shape)
        K = vmap(op)(basis).reshape(12, -1).T
        x = torch.linalg.solve(K.mH @ K + 0.25 * torch.eye(12, dtype=dtype), K.mH @ y.reshape(-1)).reshape(x_shape)
        return (c * x).real.sum() + x.abs().square().sum()

    torch.testing.assert_close(ours(floats), closed(floats), rtol=1e-9, atol=1e-9)
    if floats:
        assert_rel(grad(ours)(floats), grad(closed)(floats))


# ---- transforms ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cg", "minres", "lsqr"])
def test_vmap_over_right_hand_sides_equals_a_loop(method):
    W, w, y, c, damp = problem(COMPLEX, seed=11)
    gen = torch.Generator().manual_seed(11)
    ys = randn(gen, 4, 9, dtype=COMPLEX)
    ys[1] = 0  # converges at once: the others go on without it
    ys[2] = ys[3] * 3  # converges in the same iterations as ys[3]
    E = dense(W)
    A, rhs = (E, ys) if method == "lsqr" else (E.N + fl.Diagonal(w, ("N",)), vmap(E.H)(ys))

    def one(b):
        return fl.alg.solve(A, b, method=method, tol=1e-10, max_iter=100, return_info=True)

    xs, infos = vmap(one)(rhs)
    loop = [one(b) for b in rhs]
    torch.testing.assert_close(xs, torch.stack([x for x, _ in loop]), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(infos.iterations, torch.stack([i.iterations for _, i in loop]))
    assert infos.converged.all() and int(infos.iterations[1]) == 0


@pytest.mark.parametrize("method", ["cg", "lsqr"])
def test_grad_inside_and_outside_vmap(method):
    W, w, y, c, damp = problem(REAL, seed=12)
    gen = torch.Generator().manual_seed(12)
    ys = randn(gen, 3, 9)
    ours, closed = (ours_lsqr, closed_lsqr) if method == "lsqr" else (ours_normal(method), closed_normal)
    per_problem = vmap(grad(loss_of(ours, c), argnums=(0, 1)), in_dims=(None, None, 0, None))(W, w, ys, damp)
    want = vmap(grad(loss_of(closed, c), argnums=(0, 1)), in_dims=(None, None, 0, None))(W, w, ys, damp)
    assert_rel(per_problem, want)

    def batch_loss(solution):
        return lambda W, w: vmap(solution, in_dims=(None, None, 0, None))(W, w, ys, damp).square().sum()

    assert_rel(grad(batch_loss(ours), argnums=(0, 1))(W, w), grad(batch_loss(closed), argnums=(0, 1))(W, w))


def test_vmap_over_stacked_operators_and_nested():
    gen = torch.Generator().manual_seed(13)
    Ws, ws = randn(gen, 2, 9, 6), torch.rand(2, 6, dtype=REAL, generator=gen) + 0.5
    yss = randn(gen, 2, 3, 9)
    ours = ours_normal("cg")
    # vmap over operators, then over right-hand sides (nested: the batches merge)
    got = vmap(lambda W, w, ys: vmap(lambda y: ours(W, w, y))(ys))(Ws, ws, yss)
    want = vmap(lambda W, w, ys: vmap(lambda y: closed_normal(W, w, y))(ys))(Ws, ws, yss)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    g = grad(lambda Ws: vmap(lambda W, w, ys: vmap(lambda y: ours(W, w, y))(ys))(Ws, ws, yss).sum())(Ws)
    g_ref = grad(lambda Ws: vmap(lambda W, w, ys: vmap(lambda y: closed_normal(W, w, y))(ys))(Ws, ws, yss).sum())(Ws)
    assert_rel([g], [g_ref])
    # a per-problem damping weight, batched
    damps = torch.tensor([0.1, 0.9], dtype=REAL)
    got = vmap(lambda W, y, d: ours_lsqr(W, torch.ones(6, dtype=REAL), y, d))(Ws, yss[:, 0], damps)
    want = vmap(lambda W, y, d: closed_lsqr(W, torch.ones(6, dtype=REAL), y, d))(Ws, yss[:, 0], damps)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["minres", "lsqr"])
def test_jacrev_and_jvp(method):
    W, w, y, c, damp = problem(REAL, seed=14, m=5, n=3)  # jacrev takes real inputs only
    ours, closed = (ours_lsqr, closed_lsqr) if method == "lsqr" else (ours_normal(method), closed_normal)
    for argnum in (0, 1, 2):
        J = jacrev(ours, argnums=argnum)(W, w, y, damp)
        torch.testing.assert_close(J, jacrev(closed, argnums=argnum)(W, w, y, damp), rtol=1e-8, atol=1e-11)
    tangents = (torch.ones_like(W), torch.ones_like(w), torch.ones_like(y), torch.ones_like(damp))
    got = jvp(ours, (W, w, y, damp), tangents)[1]
    torch.testing.assert_close(got, jvp(closed, (W, w, y, damp), tangents)[1], rtol=1e-8, atol=1e-11)


def test_compiles_whole_without_gradients():
    """tol=None, no progress or callback: every method traces into one graph."""
    W, w, y, _, _ = problem(REAL, seed=15, m=4, n=3)
    E = dense(W)
    A = E.N + fl.Diagonal(w, ("N",))

    def all_methods(E, A, y):
        b = E.H(y)
        return [fl.alg.solve(A, b, method=m, tol=None, max_iter=3) for m in ("cg", "minres")] + [
            fl.alg.solve(E, y, method="lsqr", tol=None, max_iter=3)]

    got = torch.compile(all_methods, fullgraph=True, backend="eager")(E, A, y)
    # n = 3: three iterations are exact
    want = [closed_normal(W, w, y)] * 2 + [closed_lsqr(W, torch.ones(3, dtype=REAL), y, 0.0)]
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


# ---- progress and callback ---------------------------------------------------------------


def test_callback_sees_every_iteration():
    W, w, y, _, _ = problem(REAL, seed=16)
    A, b = dense(W).N + fl.Diagonal(w, ("N",)), dense(W).H(y)
    seen = []
    x, info = fl.alg.solve(A, b, tol=1e-10, callback=lambda i, x, r: seen.append((i, x, float(r))), return_info=True)
    assert [i for i, _, _ in seen] == list(range(1, len(seen) + 1))
    assert len(seen) == int(info.iterations)
    torch.testing.assert_close(seen[-1][1], x)
    assert seen[-1][2] <= 1e-10 * float(b.norm())
    # under vmap the callback sees the batch
    shapes = []
    vmap(lambda b: fl.alg.solve(A, b, tol=1e-10, callback=lambda i, x, r: shapes.append(x.shape)))(torch.stack([b, b]))
    assert shapes[0] == (2, 6)


def test_progress_bar(capsys):
    pytest.importorskip("tqdm")
    A = fl.Diagonal(torch.tensor([1.0, 2.0, 3.0], dtype=REAL), ("N",))
    x = fl.alg.solve(A, torch.ones(3, dtype=REAL), method="minres", tol=1e-10, progress=True)
    torch.testing.assert_close(x, 1 / A.weight)
    assert "minres" in capsys.readouterr().err


# ---- bad input -----------------------------------------------------------------------------


def test_bad_input_is_refused_before_iterating():
    W = torch.randn(5, 3, dtype=REAL)
    E = dense(W)
    never = lambda *a: pytest.fail("iterated")  # noqa: E731
    with pytest.raises(ShapeError, match=r"Dense\(\(N\) -> \(M\)\) is not square \(it maps \(N\) to \(M\)\).*A\.N.*lsqr"):
        fl.alg.solve(E, torch.ones(3, dtype=REAL), callback=never)
    with pytest.raises(ShapeError, match="not square"):
        fl.alg.solve(E, torch.ones(3, dtype=REAL), method="minres")
    with pytest.raises(ShapeError, match=r"b dim 'N' has size 4, but A = Dense"):
        fl.alg.solve(E.N, torch.ones(4, dtype=REAL), callback=never)
    with pytest.raises(ShapeError, match=r"b of shape \(3, 3\) has 2 dims"):
        fl.alg.solve(E.N, torch.ones(3, 3, dtype=REAL))
    with pytest.raises(ShapeError, match=r"b dim 'M' has size 3"):
        fl.alg.solve(E, torch.ones(3, dtype=REAL), method="lsqr")
    with pytest.raises(ValueError, match="b .* non-finite"):
        fl.alg.solve(E.N, torch.tensor([1.0, float("nan"), 0.0], dtype=REAL), callback=never)
    with pytest.raises(ShapeError, match=r"b dim 'N' has size 3, but M = Diagonal\(\(N\) -> \(N\)\) has size 4"):
        fl.alg.solve(E.N, torch.ones(3, dtype=REAL), M=fl.Diagonal(torch.ones(4, dtype=REAL), ("N",)))
    with pytest.raises(ShapeError, match=r"M \(function\) maps a vector of shape \(3,\) to \(4,\)"):
        fl.alg.solve(E.N, torch.ones(3, dtype=REAL), M=lambda r: torch.ones(4, dtype=REAL), callback=never)
    with pytest.raises(ShapeError, match=r"A \(function\) maps"):
        fl.alg.solve(lambda x: W @ x, torch.ones(3, dtype=REAL), callback=never)
    with pytest.raises(ShapeError, match="x0 of shape"):
        fl.alg.solve(E.N, torch.ones(3, dtype=REAL), x0=torch.ones(4, dtype=REAL))
    with pytest.raises(ShapeError, match="x0 of shape"):
        fl.alg.solve(E, torch.ones(5, dtype=REAL), method="lsqr", x0=torch.ones(5, dtype=REAL))
    with pytest.raises(TypeError, match="lsqr applies its adjoint"):
        fl.alg.solve(lambda x: W @ x, torch.ones(5, dtype=REAL), method="lsqr")
    with pytest.raises(ValueError, match="lsqr takes no preconditioner"):
        fl.alg.solve(E, torch.ones(5, dtype=REAL), method="lsqr", M=fl.Identity(("N",)))
    with pytest.raises(fl.DeviceError, match=r"b is on cpu but A = Diagonal\(\(N\) -> \(N\)\) has its tensors on meta"):
        fl.alg.solve(fl.Diagonal(torch.ones(3, device="meta"), ("N",)), torch.ones(3, dtype=REAL), callback=never)
    with pytest.raises(ValueError, match="method must be one of"):
        fl.alg.solve(E.N, torch.ones(3, dtype=REAL), method="gmres")
    with pytest.raises(TypeError, match="floating-point or complex"):
        fl.alg.solve(E.N, torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="damp must be finite"):
        fl.alg.solve(E.N, torch.ones(3, dtype=REAL), damp=-1.0)
    with pytest.raises(ValueError, match="tol must be"):
        fl.alg.solve(E.N, torch.ones(3, dtype=REAL), tol=float("nan"))


def test_the_documented_learning_example_lowers_the_loss():
    """The worked example of docs/algorithms.md, run smaller: it runs as written and learns."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "algorithms.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "torch.func.grad(loss)" in b)
    assert "n = 64" in block and "range(20)" in block
    scope = {}
    exec(block.replace("n = 64", "n = 24").replace("range(20)", "range(3)"), scope)
    start = scope["loss"](torch.full((24, 24), -4.0))
    assert float(scope["loss"](scope["log_w"])) < float(start)


def _host_cases():
    gen = torch.Generator().manual_seed(18)
    W = randn(gen, 10, 6, dtype=COMPLEX)
    G = W.mH @ W + torch.eye(6, dtype=COMPLEX)
    A = dense(G)
    b = randn(gen, 6, dtype=COMPLEX)
    M = fl.Diagonal(1 / torch.diagonal(G).real, ("N",))
    R = dense(randn(gen, 3, 8))  # rank 3: R.N is singular
    two = fl.Diagonal(torch.full((3,), 2.0, dtype=REAL), ("N",))
    return {
        "converges": (A, b, None, None, 1e-10, 50),
        "preconditioned": (A, b, None, M, 1e-10, 50),
        "from x0": (A, b, randn(gen, 6, dtype=COMPLEX), None, 1e-10, 50),
        "fixed, unconverged": (A, b, None, M, None, 3),
        "b = 0": (A, torch.zeros(6, dtype=COMPLEX), randn(gen, 6, dtype=COMPLEX), None, 1e-8, 10),
        "exact after one step": (two, torch.tensor([1.0, 2.0, 3.0], dtype=REAL), None, None, None, 10),
        "null direction": (fl.Diagonal(torch.tensor([1.0, 0.0], dtype=REAL), ("N",)), torch.ones(2, dtype=REAL),
                           None, None, 1e-8, 10),
        "inconsistent singular": (R.N, randn(gen, 8), None, None, 1e-10, 60),
        "inconsistent singular, fixed": (R.N, randn(gen, 8), None, None, None, 60),
        "non-finite operator": (fl.Diagonal(torch.tensor([1.0, float("inf")], dtype=REAL), ("N",)),
                                torch.ones(2, dtype=REAL), None, None, 1e-8, 10),
    }


@pytest.mark.parametrize("case", sorted(_host_cases()))
def test_host_scalar_cg_decides_as_the_tensor_path(case):
    """solve's eager CPU path keeps CG's scalars on the host: same decisions, same answers."""
    from funclinop.alg.cg import _cg

    A, b, x0, M, tol, max_iter = _host_cases()[case]
    tensor = _cg(A, b, x0, M=M, tol=tol, max_iter=max_iter)
    host = _cg(A, b, x0, M=M, tol=tol, max_iter=max_iter, host=True)
    torch.testing.assert_close(host[0], tensor[0], rtol=1e-9, atol=1e-12, equal_nan=True)
    assert int(host[1]) == int(tensor[1]) and bool(host[3]) == bool(tensor[3])
    torch.testing.assert_close(host[2], tensor[2], rtol=1e-9, atol=1e-12, equal_nan=True)
    for t, h in zip(tensor[1:], host[1:]):
        assert (t.dtype, t.shape) == (h.dtype, h.shape)
