"""Interpolate, NUFFT, its Toeplitz normal and density compensation, against a direct float64 NUDFT."""

import math

import pytest
import torch

import funclinop as fl
from funclinop.ops.nufft import ToeplitzNormal, nudft_matrix
from funclinop.testing import check_adjoint, check_normal, check_pytree

C128 = torch.complex128
SIZES = [(33,), (32,), (16, 15), (15, 20), (9, 10, 7), (8, 8, 8)]


def crandn(*shape, seed=0, dtype=C128):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def random_locs(n, size, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, len(size), generator=g, dtype=dtype) - 0.5) * torch.tensor(size, dtype=dtype)


def rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def errors(A, locs, size, seed=1):
    """Relative L2 errors of A and A.H against the direct NUDFT."""
    M = nudft_matrix(locs, size)
    x, y = crandn(*size, seed=seed), crandn(locs.shape[0], seed=seed + 1)
    return rel(A(x), M @ x.flatten()), rel(A.H(y).flatten(), M.conj().T @ y)


# ---- the transform ------------------------------------------------------------


def test_nudft_at_integer_locations_is_centred_fft_then_sampling():
    for size in [(7,), (6, 5), (5, 4, 3)]:  # odd sizes: FFT(centered=True) puts the origin at N // 2
        g = torch.Generator().manual_seed(0)
        idx = torch.stack([torch.randint(n, (20,), generator=g) for n in size], -1)
        locs = (idx - torch.tensor([n // 2 for n in size])).double()
        S = fl.Sampling(tuple(idx.unbind(-1)), size)
        F = fl.FFT(len(size), centered=True)
        x = crandn(*size)
        want = S(F(x))
        torch.testing.assert_close(nudft_matrix(locs, size) @ x.flatten(), want)
        assert rel(fl.NUFFT(locs, size, eps=1e-6)(x), want) <= 2e-6


def predicted(size, width=4, oversamp=1.25):
    """The min-max error per dim adds in quadrature over the dims (independent aliasing)."""
    from funclinop.ops.interp import minmax_table
    from funclinop.ops.nufft import padded_sizes

    tables = [minmax_table(n, g, width) for n, g in zip(size, padded_sizes(size, oversamp))]
    return math.sqrt(sum(t.err**2 for t in tables))


def batch_errors(size, nlocs=400, **options):
    """Relative L2 errors of forward and adjoint over 8 images (one image's
    error in 1-D hangs on its few edge frequencies), and the data used."""
    locs = random_locs(nlocs, size)
    M = nudft_matrix(locs, size)
    x, y = crandn(8, *size, seed=1), crandn(8, locs.shape[0], seed=2)
    want_f, want_a = x.reshape(8, -1) @ M.T, y @ M.conj()

    def errs(forward, adjoint):
        return rel(forward.reshape(8, -1), want_f), rel(adjoint.reshape(8, -1), want_a)

    if options.get("sigpy"):
        sigpy = options["sigpy"]
        return errs(torch.from_numpy(sigpy.nufft(x.numpy(), locs.numpy())),
                    torch.from_numpy(sigpy.nufft_adjoint(y.numpy(), locs.numpy(), (8, *size))))
    A = fl.NUFFT(locs, size, **options)
    return errs(A(x), A.H(y))


@pytest.mark.parametrize("size", SIZES)
def test_defaults_reach_the_minmax_error_and_beat_kaiser_bessel(size):
    """oversamp 1.25, width 4: the min-max weights reach the error their tables
    predict (the least any 4 taps can do for that apodisation, tests below),
    at least 10 % below the Kaiser–Bessel kernel's with the same parameters."""
    ef, ea = batch_errors(size)
    kf, ka = batch_errors(size, kernel="kaiser_bessel")
    assert ef <= 0.9 * kf and ea <= 0.9 * ka
    # random samples and images: the measured error scatters about its expectation
    assert 0.8 * predicted(size) <= max(ef, ea) <= 1.15 * predicted(size)


@pytest.mark.parametrize("size", SIZES)
def test_kaiser_bessel_is_sigpys_and_the_defaults_beat_it(size):
    """SigPy (Kaiser–Bessel, Beatty's β, the same parameters) is the reference."""
    sigpy = pytest.importorskip("sigpy")
    sf, sa = batch_errors(size, sigpy=sigpy)
    kf, ka = batch_errors(size, kernel="kaiser_bessel")
    ef, ea = batch_errors(size)
    assert kf <= 1.05 * sf and ka <= 1.05 * sa
    assert ef <= 0.9 * sf and ea <= 0.9 * sa


@pytest.mark.parametrize("size", [(32, 32), (16, 16, 16), (9, 10, 7), (64,)])
def test_default_error_per_dimension(size):
    """The figures the docs give: about 3.6e-3 per dim at large sizes, 4.3e-3 at 16."""
    limit = {1: 4.5e-3, 2: 6.3e-3, 3: 7.7e-3}[len(size)]
    locs = random_locs(1000, size, seed=5)
    assert max(errors(fl.NUFFT(locs, size), locs, size, seed=5)) <= limit


@pytest.mark.parametrize("n, width, oversamp", [(16, 4, 1.25), (15, 4, 1.25), (33, 5, 1.25), (20, 6, 2.0), (1, 4, 1.25)])
def test_minmax_weights_are_the_least_squares_interpolator(n, width, oversamp):
    """Independent reference: per location, the weights that minimise the error
    summed over the image's frequencies, from numpy's least squares on the
    dense system (frequency × tap), for the apodisation NUFFT uses."""
    import numpy as np

    from funclinop.ops.interp import kernel_transform, minmax_table, minmax_weights
    from funclinop.ops.nufft import padded_sizes

    (g,) = padded_sizes((n,), oversamp)
    t = minmax_table(n, g, width)
    nu = (torch.arange(n, dtype=torch.float64) - n // 2) / g
    s = (1 / kernel_transform(nu, width, "kaiser_bessel", t.beta)).numpy()
    u = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    d = u[:, None] - (torch.floor(u - width / 2)[:, None] + 1 + torch.arange(width))
    got = minmax_weights(d, t).numpy()
    for di, ci in zip(d.numpy(), got):
        A = s[:, None] * np.exp(2j * np.pi * nu.numpy()[:, None] * di)
        system = np.concatenate([A.real, A.imag])
        rhs = np.concatenate([np.ones(n), np.zeros(n)])
        want = np.linalg.lstsq(system, rhs, rcond=None)[0]
        # the least squares residual, not the weights: with one frequency (n = 1) they are not unique
        assert np.linalg.norm(system @ ci - rhs) <= np.linalg.norm(system @ want - rhs) * (1 + 1e-9) + 1e-12
        if n > width:
            np.testing.assert_allclose(ci, want, rtol=1e-7, atol=1e-9 * np.abs(want).max())


def test_minmax_is_only_built_through_the_nufft():
    with pytest.raises(ValueError, match="Interpolate: the minmax kernel is tuned to an image size"):
        fl.Interpolate(random_locs(5, (8,)), (10,), kernel="minmax")


@pytest.mark.parametrize("size", SIZES)
def test_oversamp_2_width_6(size):
    locs = random_locs(400, size, seed=2)
    assert max(errors(fl.NUFFT(locs, size, oversamp=2, width=6), locs, size)) <= 1e-5


@pytest.mark.parametrize("eps", [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
@pytest.mark.parametrize("size", [(31,), (16, 15), (9, 10, 7)])
def test_eps_is_met(size, eps):
    locs = random_locs(300, size, seed=3)
    assert max(errors(fl.NUFFT(locs, size, eps=eps), locs, size)) <= 2 * eps


@pytest.mark.parametrize("kernel", ["minmax", "kaiser_bessel", "spline"])
@pytest.mark.parametrize("size", [(16, 15), (5, 6, 7)])
def test_adjoint_is_exact(size, kernel):
    A = fl.NUFFT(random_locs(50, size), size, kernel=kernel, ishape=("C",) + fl.Dim("NxNyNz")[: len(size)],
                 oshape=("C", "K"))
    check_adjoint(A, crandn(3, *size))
    check_normal(A, crandn(3, *size))


def test_float32():
    size = (16, 15)
    locs = random_locs(200, size, dtype=torch.float32)
    A = fl.NUFFT(locs, size)
    x = crandn(*size, dtype=torch.complex64)
    assert A(x).dtype == torch.complex64
    want = nudft_matrix(locs.double(), size) @ x.flatten().to(C128)
    assert rel(A(x).to(C128), want) <= 1e-2  # the float64 bound: the kernel's error, not float32's


def test_multi_dim_samples_and_default_names():
    locs = random_locs(24, (8, 8)).reshape(4, 6, 2)
    A = fl.NUFFT(locs, (8, 8))
    assert A.oshape == ("...", "K", "K1")
    x = crandn(2, 8, 8)
    torch.testing.assert_close(A(x).reshape(2, 24), fl.NUFFT(locs.reshape(24, 2), (8, 8))(x))


def test_per_frame_locations():
    size = (10, 9)
    locs = torch.stack([random_locs(30, size, seed=s) for s in range(3)])  # (T, K, 2)
    A = fl.NUFFT(locs, size, ishape=("T", "Nx", "Ny"), oshape=("T", "K"), toeplitz=True)
    x = crandn(3, *size)
    for t in range(3):
        B = fl.NUFFT(locs[t], size, ishape=("Nx", "Ny"), oshape=("K",))
        torch.testing.assert_close(A(x)[t], B(x[t]))
        M = nudft_matrix(locs[t], size)
        assert rel(A.N(x)[t].flatten(), M.conj().T @ (M @ x[t].flatten())) <= 1e-4
    check_adjoint(A, x)


# ---- Toeplitz normal ----------------------------------------------------------


@pytest.mark.parametrize("size", [(15,), (15, 20), (16, 16), (9, 10, 7)])
def test_toeplitz_normal_matches_the_exact_normal(size):
    locs = random_locs(300, size, seed=4)
    A = fl.NUFFT(locs, size, toeplitz=True)
    M = nudft_matrix(locs, size)
    x = crandn(2, *size)
    want = (x.reshape(2, -1) @ M.T) @ M.conj()  # rows: Mᴴ M x
    assert rel(A.N(x).reshape(2, -1), want) <= 1e-4
    assert isinstance(A.N, ToeplitzNormal)
    check_adjoint(A.N, x)


def test_toeplitz_kernel_from_the_nufft_for_large_problems():
    size = (64, 64)  # 1100 samples × (2·64)²: past the exact sum's size limit
    locs = random_locs(1100, size, seed=5)
    A = fl.NUFFT(locs, size, toeplitz=True)
    M = nudft_matrix(locs, size)
    x = crandn(*size)
    assert rel(A.N(x).flatten(), M.conj().T @ (M @ x.flatten())) <= 1e-4


def test_toeplitz_survives_composition():
    size = (12, 11)
    locs = random_locs(150, size, seed=6)
    maps = crandn(4, *size, seed=7)
    A = fl.NUFFT(locs, size, toeplitz=True)
    S = fl.Dense(maps, ("C", "Nx", "Ny"), ("Nx", "Ny"), ("C", "Nx", "Ny"))
    E = A @ S
    N = E.N
    # the middle factor is the Toeplitz one
    assert [type(op) for op in N.linops] == [fl.Dense, ToeplitzNormal, fl.Dense]
    M = nudft_matrix(locs, size)
    x = crandn(*size, seed=8)
    sx = (maps * x).reshape(4, -1)
    want = ((sx @ M.T) @ M.conj()).reshape(4, *size)
    want = (maps.conj() * want).sum(0)
    assert rel(N(x), want) <= 1e-4


def test_weighted_toeplitz_normal():
    size = (15, 20)
    locs = random_locs(250, size, seed=9)
    w = torch.rand(250, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    A = fl.NUFFT(locs, size)
    T = fl.nufft.toeplitz_normal(A, locs, w)
    M = nudft_matrix(locs, size)
    x = crandn(*size)
    assert rel(T(x).flatten(), M.conj().T @ (w * (M @ x.flatten()))) <= 1e-4
    with pytest.raises(fl.ShapeError, match="weights"):
        fl.nufft.toeplitz_normal(A, locs, w[:10])
    with pytest.raises(fl.ShapeError, match="do not match"):
        fl.nufft.toeplitz_normal(A, locs[:10], None)


# ---- splitting ----------------------------------------------------------------


def test_split_over_batch_frame_and_sample_dims():
    size = (8, 7)
    locs = torch.stack([random_locs(20, size, seed=s) for s in range(3)])
    x = crandn(2, 3, *size)
    y = crandn(2, 3, 20)
    for spec, toeplitz in (({"T": 2}, True), ({"K": 7}, False), ({"T": 1, "K": 6}, False)):
        A = fl.NUFFT(locs, size, ishape=("C", "T", "Nx", "Ny"), oshape=("C", "T", "K"), toeplitz=toeplitz)
        for stack in (False, True):
            B = fl.create_batched_linop(A, fl.BatchSpec(spec, stack=stack))
            torch.testing.assert_close(B(x), A(x))
            torch.testing.assert_close(B.H(y), A.H(y))
            torch.testing.assert_close(B.N(x), A.N(x))


@pytest.mark.parametrize("dim", ["Nx", "Ny"])
def test_split_over_grid_dims_is_refused(dim):
    A = fl.NUFFT(random_locs(20, (8, 7)), (8, 7))
    with pytest.raises(ValueError, match=f"cannot split dim '{dim}' of NUFFT"):
        fl.create_batched_linop(A, fl.BatchSpec({dim: 2}))
    T = fl.NUFFT(random_locs(20, (8, 7)), (8, 7), toeplitz=True)
    with pytest.raises(ValueError, match="cannot split dim 'K' of NUFFT.*Toeplitz kernel"):
        fl.create_batched_linop(T, fl.BatchSpec({"K": 2}))
    with pytest.raises(ValueError, match="Toeplitz kernel"):
        T.tile({"K": slice(0, 2)})
    G = fl.Interpolate(random_locs(20, (8, 7)) + 4, (8, 7))
    with pytest.raises(ValueError, match=f"'{dim}'"):
        fl.create_batched_linop(G, fl.BatchSpec({dim: 2}))


# ---- differentiability ------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["minmax", "kaiser_bessel", "spline"])
def test_gradient_with_respect_to_locations(kernel):
    size = (10, 9)
    locs = random_locs(15, size, seed=10) * 0.9
    x = crandn(*size)
    target = crandn(15, seed=11)

    def loss(locs):
        return (fl.NUFFT(locs, size, kernel=kernel)(x) - target).abs().square().sum()

    g = torch.func.grad(loss)(locs)
    h = 1e-6
    for k in [(0, 0), (3, 1), (14, 0)]:
        e = torch.zeros_like(locs)
        e[k] = h
        fd = (loss(locs + e) - loss(locs - e)) / (2 * h)
        assert abs(float(g[k]) - float(fd)) <= 1e-5 * max(1.0, abs(float(fd)))
    # and with the NUDFT itself: the gradient of the approximation is close to the exact one
    exact = torch.func.grad(lambda locs: ((nudft_matrix(locs, size) @ x.flatten()) - target).abs().square().sum())(locs)
    if kernel != "spline":
        assert rel(g, exact) <= 5e-2


def test_transforms_through_the_operator():
    size = (6, 5)
    A = fl.NUFFT(random_locs(12, size), size, toeplitz=True)
    check_pytree(A, crandn(*size))
    f = torch.compile(lambda A, x: (A(x), A.H(A(x)), A.N(x)), fullgraph=True, backend="eager")
    x = crandn(*size)
    for got, want in zip(f(A, x), (A(x), A.H(A(x)), A.N(x))):
        torch.testing.assert_close(got, want)


# ---- Interpolate ------------------------------------------------------------------


def dense_interp(locs, size, width, kernel, pad_mode, beta):
    """The interpolation matrix, entry by entry from the kernel (grid points within reach, periodic or not)."""
    from funclinop.ops.interp import kernel as phi

    M = torch.zeros(locs.shape[0], math.prod(size), dtype=torch.float64)
    grids = torch.meshgrid(*(torch.arange(n) for n in size), indexing="ij")
    points = torch.stack([g.flatten() for g in grids], -1).double()
    for l in range(locs.shape[0]):
        w = torch.ones(points.shape[0], dtype=torch.float64)
        for d, n in enumerate(size):
            diff = locs[l, d] - points[:, d]
            if pad_mode == "circular":
                diff = (diff + n / 2) % n - n / 2  # nearest periodic image (n > width here)
            w = w * phi(diff, width, kernel, beta)
        M[l] = w
    return M


@pytest.mark.parametrize("pad_mode", ["circular", "zero"])
@pytest.mark.parametrize("kernel", ["kaiser_bessel", "spline"])
@pytest.mark.parametrize("size", [(11,), (9, 8), (7, 6, 5)])
def test_interpolate_matches_the_kernel_matrix(size, kernel, pad_mode):
    g = torch.Generator().manual_seed(0)
    locs = torch.rand(13, len(size), generator=g, dtype=torch.float64) * (torch.tensor(size) + 2) - 1
    G = fl.Interpolate(locs, size, width=3, kernel=kernel, pad_mode=pad_mode, beta=5.0)
    M = dense_interp(locs, size, 3, kernel, pad_mode, 5.0)
    x = crandn(2, *size)
    torch.testing.assert_close(G(x), x.reshape(2, -1) @ M.T.to(C128))
    check_adjoint(G, x)


def test_interpolate_refuses_bad_input():
    locs = torch.zeros(5, 2)
    with pytest.raises(fl.ShapeError, match="locs"):
        fl.Interpolate(torch.zeros(5, 3), (4, 4))
    with pytest.raises(TypeError, match="locs"):
        fl.Interpolate(torch.zeros(5, 2, dtype=torch.int64), (4, 4))
    with pytest.raises(ValueError, match="kernel"):
        fl.Interpolate(locs, (4, 4), kernel="gauss")
    with pytest.raises(ValueError, match="pad_mode"):
        fl.Interpolate(locs, (4, 4), pad_mode="reflect")
    with pytest.raises(fl.ShapeError, match="oshape"):
        fl.Interpolate(locs, (4, 4), ishape=("C", "Nx", "Ny"), oshape=("K",))
    with pytest.raises(fl.ShapeError, match="input dim 'Ny' has size 3"):
        fl.Interpolate(locs, (4, 4))(torch.zeros(4, 3))


def test_nufft_refuses_bad_input():
    with pytest.raises(ValueError, match=r"locs\[..., 1\] has value 4.0, outside \[-4.0, 4.0\)"):
        fl.NUFFT(torch.tensor([[0.0, 4.0]]), (8, 8))
    with pytest.raises(ValueError, match="backend"):
        fl.NUFFT(torch.zeros(3, 2), (8, 8), backend="cufinufft")
    with pytest.raises(ValueError, match="toeplitz=True needs backend='torch'"):
        fl.NUFFT(torch.zeros(3, 2), (8, 8), backend="finufft", toeplitz=True)
    with pytest.raises(ValueError, match="eps"):
        fl.NUFFT(torch.zeros(3, 2), (8, 8), eps=1e-9)
    with pytest.raises(ValueError, match="grid_size"):
        fl.NUFFT(torch.zeros(3, 4), (2, 2, 2, 2))
    with pytest.raises(ValueError, match="vanishes"):  # the tent's transform is zero at 2 / width = 0.4
        fl.NUFFT(torch.zeros(3, 1), (4,), kernel="spline", width=5)
    with pytest.raises(TypeError, match="not both"):
        A = fl.NUFFT(torch.zeros(3, 2), (8, 8))
        fl.NUFFT(torch.zeros(3, 2), (8, 8), interp=A.interp)


def test_finufft_backend():
    pytest.importorskip("funclinop.ops.finufft")
    locs = random_locs(40, (8, 7))
    A = fl.NUFFT(locs, (8, 7), backend="finufft", eps=1e-6)
    x = crandn(8, 7)
    assert rel(A(x), fl.NUFFT(locs, (8, 7), eps=1e-6)(x)) <= 1e-5


def test_replace_recomputes_from_the_parts():
    import dataclasses

    A = fl.NUFFT(random_locs(10, (6, 5)), (6, 5), toeplitz=True)
    assert dataclasses.replace(A) == A
    B = dataclasses.replace(A, psf=None)
    assert not B.toeplitz and B.N.linops[-1] == B.H
    assert A.H.H == A


# ---- density compensation -----------------------------------------------------------


def test_density_compensation_flattens_a_radial_trajectory():
    n, spokes, size = 32, 24, (32, 32)
    r = torch.arange(-n // 2, n // 2, dtype=torch.float64)
    angles = torch.arange(spokes, dtype=torch.float64) * math.pi / spokes
    locs = torch.stack([r[None] * torch.cos(angles)[:, None], r[None] * torch.sin(angles)[:, None]], -1)
    w = fl.nufft.density_compensation(locs, size)
    assert w.shape == (spokes, n)
    assert math.isclose(float(w.sum()), math.pi * 16**2, rel_tol=0.05)  # unit density over the disk
    # radial density falls as 1/|k|: the weights grow with |k|
    edge, centre = w[:, 1].mean(), w[:, n // 2 + 1].mean()
    assert edge > 5 * centre
    # weighted, the normal is close to the identity on a smooth image: much
    # closer than with uniform weights at their best scale
    A = fl.NUFFT(locs.reshape(-1, 2), size)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    img = torch.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / 40).to(C128)
    out = fl.nufft.toeplitz_normal(A, locs.reshape(-1, 2), w.reshape(-1))(img)
    gain = float(torch.vdot(img.flatten(), out.flatten()).real / img.norm() ** 2)
    assert abs(gain - 1) <= 0.05
    flat = A.N(img)
    best = float(torch.vdot(flat.flatten(), img.flatten()).real / flat.norm() ** 2)
    assert rel(out, img) <= 0.5 * rel(best * flat, img)


def test_density_compensation_per_frame():
    size = (12, 12)
    locs = torch.stack([random_locs(40, size, seed=s) for s in range(2)])
    w = fl.nufft.density_compensation(locs, size, frames=1)
    for t in range(2):
        torch.testing.assert_close(w[t], fl.nufft.density_compensation(locs[t], size))
    with pytest.raises(ValueError, match="iters"):
        fl.nufft.density_compensation(locs, size, iters=-1)


# ---- the fused gathers behind Interpolate -------------------------------------------


def _stencil(R=20, K=7, t=3, seed=0):
    """A random stencil (repeated rows included), its transpose, and its dense matrix."""
    from funclinop.ops import _bag

    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, R, (K, t), generator=g)
    w = torch.rand(K, t, dtype=torch.float64, generator=g)
    rows = torch.arange(K)[:, None].expand(K, t)

    def dense(w, idx=idx):
        return torch.zeros(K, R, dtype=torch.float64).index_put((rows, idx), w, accumulate=True)

    return idx, w, _bag.transpose(idx, R), dense


def test_gather_and_scatter_are_the_stencil_matrix_and_its_transpose_under_every_transform():
    """Values, jacrev, jacfwd (no forward-mode rule in embedding_bag: the
    Functions' jvp), hessian and vmap over data, weights and both, against the
    dense matrix built entry by entry."""
    from funclinop.ops._bag import gather, scatter

    idx, w, st, dense = _stencil()
    T, V = crandn(20, 4, dtype=torch.float64), crandn(7, 4, seed=1, dtype=torch.float64)
    ours = {"gather": (lambda a, w: gather(a, w, idx, *st), lambda a, w: dense(w) @ a, T),
            "scatter": (lambda a, w: scatter(a, w, idx, *st), lambda a, w: dense(w).T @ a, V)}
    for name, (f, ref, a) in ours.items():
        torch.testing.assert_close(f(a, w), ref(a, w))
        for jac in (torch.func.jacrev, torch.func.jacfwd):
            for got, want in zip(jac(f, argnums=(0, 1))(a, w), jac(ref, argnums=(0, 1))(a, w)):
                torch.testing.assert_close(got, want)
        h1 = torch.func.hessian(lambda a, w: f(a, w).square().sum(), argnums=(0, 1))(a, w)
        h2 = torch.func.hessian(lambda a, w: ref(a, w).square().sum(), argnums=(0, 1))(a, w)
        for i in range(2):
            for j in range(2):
                torch.testing.assert_close(h1[i][j], h2[i][j])
        ab = crandn(5, *a.shape, seed=2, dtype=torch.float64)
        wb = torch.rand(5, *w.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(torch.func.vmap(lambda a: f(a, w))(ab), torch.stack([ref(x, w) for x in ab]))
        torch.testing.assert_close(torch.func.vmap(lambda w: f(a, w))(wb), torch.stack([ref(a, v) for v in wb]))
        torch.testing.assert_close(torch.func.vmap(f)(ab, wb), torch.stack([ref(x, v) for x, v in zip(ab, wb)]))


def test_gather_and_scatter_over_a_batch_of_stencils():
    """Stacked tiles: every operand batched, folded into the rows of one call."""
    from funclinop.ops._bag import gather, scatter, transpose

    stencils = [_stencil(seed=s) for s in range(3)]
    idx = torch.stack([s[0] for s in stencils])
    w = torch.stack([s[1] for s in stencils])
    st = [torch.stack(z) for z in zip(*[transpose(i, 20) for i in idx])]
    T, V = crandn(20, 4, dtype=torch.float64), crandn(7, 4, seed=1, dtype=torch.float64)
    g = torch.func.vmap(lambda i, w, *s: gather(T, w, i, *s))(idx, w, *st)
    s = torch.func.vmap(lambda i, w, *s: scatter(V, w, i, *s))(idx, w, *st)
    for b, (_, wb, _, dense) in enumerate(stencils):
        torch.testing.assert_close(g[b], dense(wb) @ T)
        torch.testing.assert_close(s[b], dense(wb).T @ V)
    grad = torch.func.grad(lambda T: torch.func.vmap(lambda i, w, *s: gather(T, w, i, *s))(idx, w, *st).square().sum())(T)
    want = torch.func.grad(lambda T: sum((d(wb) @ T).square().sum() for _, wb, _, d in stencils))(T)
    torch.testing.assert_close(grad, want)


def test_jacfwd_through_an_interpolate():
    size = (6, 5)
    x = crandn(*size)
    J = torch.func.jacfwd(lambda locs: fl.NUFFT(locs, size)(x).real)(random_locs(4, size))
    Jr = torch.func.jacrev(lambda locs: fl.NUFFT(locs, size)(x).real)(random_locs(4, size))
    torch.testing.assert_close(J, Jr)
