"""The finufft backend (FiNUFFT and its custom ops) against a direct float64 NUDFT."""

import math
import sys

import pytest
import torch

import funclinop as fl
from funclinop.errors import DeviceError, ShapeError
from funclinop.nufft import FiNUFFT
from funclinop.ops.finufft import finufft_type1, finufft_type2
from funclinop.testing import check_adjoint, check_normal

pytest.importorskip("finufft")

C64, C128 = torch.complex64, torch.complex128


def nudft_matrix(locs, grid_size):
    """The NUDFT as a dense float64 matrix ``(M, prod N)``, from its definition."""
    locs = locs.reshape(-1, len(grid_size)).double()
    axes = [torch.arange(n, dtype=torch.float64) - n // 2 for n in grid_size]
    n = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(grid_size))
    phase = (locs / torch.tensor(grid_size, dtype=torch.float64)) @ n.T
    return torch.exp(-2j * math.pi * phase) / math.sqrt(math.prod(grid_size))


def nudft(x, locs, grid_size):
    """``(*B, *N) -> (*B, *L)`` with the dense matrix (differentiable in ``locs``)."""
    E = nudft_matrix(locs, grid_size)
    nd = len(grid_size)
    y = x.to(C128).reshape(x.shape[: x.ndim - nd] + (-1,)) @ E.T
    return y.reshape(x.shape[: x.ndim - nd] + locs.shape[:-1])


def rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def random_locs(gen, shape, grid_size, dtype=torch.float64):
    n = torch.tensor(grid_size, dtype=torch.float64)
    u = torch.rand(tuple(shape) + (len(grid_size),), generator=gen, dtype=torch.float64)
    return ((u - 0.5) * n).to(dtype)


def crandn(gen, shape, dtype=C128):
    return torch.randn(shape, generator=gen, dtype=dtype)


GRIDS = [(7,), (8,), (5, 6), (6, 5), (3, 4, 5), (4, 4, 4)]


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_forward_and_adjoint_match_the_nudft(grid):
    gen = torch.Generator().manual_seed(0)
    locs = random_locs(gen, (5, 4), grid)
    A = FiNUFFT(locs, grid, ishape=("C",) + fl.Dim("NxNyNz")[: len(grid)], oshape=("C", "S", "R"), eps=1e-10)
    x = crandn(gen, (2,) + grid)
    y = crandn(gen, (2, 5, 4))
    E = nudft_matrix(locs, grid)
    assert rel(A(x), nudft(x, locs, grid)) < 1e-9
    want = (y.reshape(2, -1) @ E.conj()).reshape((2,) + grid)
    assert rel(A.H(y), want) < 1e-9


@pytest.mark.parametrize("grid", [(9,), (10, 7), (5, 6, 4)], ids=str)
def test_single_precision_accuracy(grid):
    gen = torch.Generator().manual_seed(1)
    locs = random_locs(gen, (40,), grid, torch.float32)
    A = FiNUFFT(locs, grid, eps=1e-5)
    x = crandn(gen, grid, C64)
    y = A(x)
    assert y.dtype == C64
    assert rel(y.to(C128), nudft(x, locs, grid)) < 1e-5


def test_out_of_range_locations_wrap_with_period_n():
    gen = torch.Generator().manual_seed(2)
    grid = (6, 5)
    locs = random_locs(gen, (20,), grid)
    x = crandn(gen, grid)
    shifted = locs + torch.tensor([6.0, -10.0]) * torch.randint(-2, 3, (20, 1), generator=gen)
    A, B = FiNUFFT(locs, grid, eps=1e-10), FiNUFFT(shifted, grid, eps=1e-10)
    assert rel(B(x), A(x)) < 1e-9
    assert rel(B(x), nudft(x, shifted, grid)) < 1e-9
    # whole periods: within [-3 pi, 3 pi) finufft folds the points, beyond it they are wrapped first
    for k in (1, -1, 2, -3):
        assert rel(FiNUFFT(locs + k * torch.tensor([6.0, 5.0], dtype=torch.float64), grid, eps=1e-10)(x), A(x)) < 1e-9


@pytest.mark.parametrize("dtype", [C64, C128], ids=str)
def test_adjoint_and_normal_to_rounding(dtype):
    """Type 1 and type 2 of one plan are adjoint to rounding, not only to eps."""
    gen = torch.Generator().manual_seed(3)
    grid = (7, 6)
    locs = random_locs(gen, (3, 50), grid, dtype.to_real())
    A = FiNUFFT(locs, grid, ishape=("B", "Nx", "Ny"), oshape=("B", "S", "R"), eps=1e-6)
    x = crandn(gen, (2,) + grid, dtype)
    check_adjoint(A, x)  # rtol 1e-10 in double precision
    check_normal(A, x)
    assert A.H.H == A


def test_batch_dims_and_frames():
    """Leading batch dims run as n_trans; a leading locs dim is one trajectory per frame."""
    gen = torch.Generator().manual_seed(4)
    grid = (6, 6)
    locs = random_locs(gen, (3, 10), grid)  # 3 frames of 10 samples
    A = FiNUFFT(locs, grid, ishape=("...", "C", "T", "Nx", "Ny"), oshape=("...", "C", "T", "M"), eps=1e-10)
    assert A.frame_shape == ("T",) and A.sample_shape == ("M",)
    assert A.size("T") == 3 and A.size("M") == 10 and A.size("Nx") == 6 and A.size("C") is None
    x = crandn(gen, (2, 4, 3) + grid)
    y = A(x)
    assert y.shape == (2, 4, 3, 10)
    for t in range(3):
        assert rel(y[:, :, t], nudft(x[:, :, t], locs[t], grid)) < 1e-9
    v = crandn(gen, y.shape)
    for t in range(3):
        E = nudft_matrix(locs[t], grid)
        want = (v[:, :, t] @ E.conj()).reshape((2, 4) + grid)
        assert rel(A.H(v)[:, :, t], want) < 1e-9
    check_adjoint(A, x)


def test_real_input_and_promotion():
    gen = torch.Generator().manual_seed(5)
    locs32 = random_locs(gen, (8,), (5,), torch.float32)
    A32, A64 = FiNUFFT(locs32, (5,)), FiNUFFT(locs32.double(), (5,))
    x = torch.randn(5, generator=gen)
    assert A32(x).dtype == C64 and A32(x.double()).dtype == C128
    assert A64(x).dtype == C128 and A64(x.to(C64)).dtype == C128
    assert A32.H(A32(x)).dtype == C64
    assert rel(A64(x), nudft(x, locs32, (5,))) < 1e-5  # eps 1e-6 by default


def test_vmap_over_data_and_over_a_stack_of_operators():
    gen = torch.Generator().manual_seed(6)
    grid = (5, 4)
    locs = random_locs(gen, (2, 9), grid)
    A = FiNUFFT(locs, grid, ishape=("C", "Nx", "Ny"), oshape=("C", "S", "R"), eps=1e-10)
    x = crandn(gen, (3, 2) + grid)
    ys = torch.func.vmap(A)(x)
    torch.testing.assert_close(ys, torch.stack([A(t) for t in x]), rtol=1e-12, atol=1e-12)
    yv = crandn(gen, ys.shape)
    torch.testing.assert_close(torch.func.vmap(A.H)(yv), torch.stack([A.H(t) for t in yv]), rtol=1e-12, atol=1e-12)
    # a stack of operators (batched locations), with and without batched data
    B = FiNUFFT(random_locs(gen, (2, 9), grid), grid, ishape=A.ishape, oshape=A.oshape, eps=1e-10)
    stacked = torch.utils._pytree.tree_map(lambda a, b: torch.stack([a, b]), A, B)
    apply = lambda op, x: op(x)
    for in_dims, xs in (((0, None), x[0]), ((0, 0), x[:2])):
        got = torch.func.vmap(apply, in_dims=in_dims)(stacked, xs)
        want = [op(xs if in_dims[1] is None else xs[i]) for i, op in enumerate((A, B))]
        torch.testing.assert_close(got, torch.stack(want), rtol=1e-12, atol=1e-12)
    got = torch.func.vmap(lambda op, y: op.H(y), in_dims=(0, None))(stacked, yv[0])
    torch.testing.assert_close(got, torch.stack([A.H(yv[0]), B.H(yv[0])]), rtol=1e-12, atol=1e-12)


def test_one_call_per_frame_and_n_trans(monkeypatch):
    """Vmapped data joins finufft's n_trans: one plan per trajectory, not per vmapped entry."""
    import finufft

    plans = []
    real_plan = finufft.Plan

    def counting_plan(*args, **kwargs):
        plans.append(args[2])  # n_trans
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(finufft, "Plan", counting_plan)
    gen = torch.Generator().manual_seed(7)
    A = FiNUFFT(random_locs(gen, (9,), (6, 6)), (6, 6), ishape=("C", "Nx", "Ny"), oshape=("C", "M"))
    torch.func.vmap(A)(crandn(gen, (4, 3, 6, 6)))
    assert plans == [12]


@pytest.mark.parametrize("adjoint", [False, True], ids=["forward", "adjoint"])
@pytest.mark.parametrize("grid", [(7,), (6, 5), (3, 4, 3)], ids=str)
def test_gradients_match_the_dense_nudft(grid, adjoint):
    """Gradients with respect to the data and the locations equal autograd
    through the dense float64 NUDFT (which differentiates exp directly)."""
    gen = torch.Generator().manual_seed(8)
    locs = random_locs(gen, (2, 6), grid)
    w = crandn(gen, (2, 2, 6) if adjoint else (2,) + grid)
    shapes = dict(ishape=("C",) + fl.Dim("NxNyNz")[: len(grid)], oshape=("C", "S", "R"), eps=1e-12)

    def loss(locs, w):
        A = FiNUFFT(locs, grid, **shapes)
        out = A.H(w) if adjoint else A(w)
        return (out.abs().square() * torch.arange(out.numel()).reshape(out.shape)).sum()

    def loss_dense(locs, w):
        E = nudft_matrix(locs, grid)
        if adjoint:
            out = (w.reshape(2, -1) @ E.conj()).reshape((2,) + grid)
        else:
            out = w.reshape(2, -1) @ E.T
        return (out.abs().square() * torch.arange(out.numel()).reshape(out.shape)).sum()

    gl, gw = torch.func.grad(loss, argnums=(0, 1))(locs, w)
    wl, ww = torch.func.grad(loss_dense, argnums=(0, 1))(locs, w)
    assert rel(gw, ww) < 1e-9
    assert rel(gl, wl) < 1e-9
    # and against central finite differences in one direction
    d = torch.randn(locs.shape, generator=gen, dtype=torch.float64)
    h = 1e-5
    fd = (loss(locs + h * d, w) - loss(locs - h * d, w)) / (2 * h)
    assert abs(float(fd - (gl * d).sum())) <= 1e-6 * abs(float(fd))


def test_grad_through_the_operator_pytree():
    """fl.grad with respect to the operator: a FiNUFFT holding d loss / d locs."""
    gen = torch.Generator().manual_seed(9)
    grid = (5, 6)
    A = FiNUFFT(random_locs(gen, (12,), grid), grid, eps=1e-12)
    x = crandn(gen, grid)
    g = fl.grad(lambda A: A(x).abs().square().sum())(A)
    assert type(g) is FiNUFFT and g.locs.shape == A.locs.shape
    want = torch.func.grad(lambda l: nudft(x, l, grid).abs().square().sum())(A.locs)
    assert rel(g.locs, want) < 1e-9


def test_compile_fullgraph():
    gen = torch.Generator().manual_seed(10)
    grid = (6, 5)
    A = FiNUFFT(random_locs(gen, (3, 8), grid), grid, ishape=("C", "T", "Nx", "Ny"), oshape=("C", "T", "M"))
    x = crandn(gen, (2, 3) + grid, C64)
    f = torch.compile(lambda A, x: (A(x), A.H(A(x)), A.N(x)), fullgraph=True, backend="aot_eager")
    for got, want in zip(f(A, x), (A(x), A.H(A(x)), A.N(x))):
        torch.testing.assert_close(got, want)


def test_compile_fullgraph_with_gradients():
    gen = torch.Generator().manual_seed(11)
    grid = (6, 5)
    locs = random_locs(gen, (8,), grid)
    x = crandn(gen, grid)

    def loss(locs, x):
        return FiNUFFT(locs, grid, eps=1e-10)(x).abs().square().sum()

    step = torch.compile(torch.func.grad(loss, argnums=(0, 1)), fullgraph=True, backend="aot_eager")
    for got, want in zip(step(locs, x), torch.func.grad(loss, argnums=(0, 1))(locs, x)):
        torch.testing.assert_close(got, want)


def test_tiles_over_batch_frame_and_sample_dims():
    gen = torch.Generator().manual_seed(12)
    grid = (5, 6)
    A = FiNUFFT(random_locs(gen, (3, 7), grid), grid, ishape=("C", "T", "Nx", "Ny"),
                oshape=("C", "T", "M"), eps=1e-10)
    x = crandn(gen, (2, 3) + grid)
    y = crandn(gen, (2, 3, 7))
    for sizes in ({"T": 2}, {"M": 3}, {"T": 1, "M": 4}):  # C is free: no operator fixes its size
        B = fl.create_batched_linop(A, fl.BatchSpec(sizes))
        assert rel(B(x), A(x)) < 1e-12
        assert rel(B.H(y), A.H(y)) < 1e-12
        assert rel(B.N(x), A.N(x)) < 1e-12
    T = A.tile({"T": slice(1, 3), "M": slice(2, 5)})
    assert rel(T(x[:, 1:3]), A(x)[:, 1:3, 2:5]) < 1e-12
    assert A.tile({"C": slice(0, 1)}) is A
    assert A.split_kind("M") == "out" and A.split_kind("T") == "diag" and A.split_kind("Nx") is None
    with pytest.raises(ValueError, match="cannot split dim 'Nx'"):
        A.tile({"Nx": slice(0, 2)})
    with pytest.raises(ValueError, match="Nx"):
        fl.create_batched_linop(A, fl.BatchSpec({"Nx": 2}))


def test_empty_dims():
    gen = torch.Generator().manual_seed(13)
    A = FiNUFFT(random_locs(gen, (4,), (5,)), (5,), ishape=("C", "Nx"), oshape=("C", "M"))
    assert A(torch.zeros(0, 5)).shape == (0, 4)
    assert A.H(torch.zeros(0, 4)).shape == (0, 5)
    E = FiNUFFT(torch.zeros(0, 1), (5,))
    assert E(torch.ones(5)).shape == (0,)
    assert torch.equal(E.H(torch.zeros(0, dtype=C64)), torch.zeros(5, dtype=C64))


def test_errors():
    locs = torch.zeros(4, 2)
    with pytest.raises(TypeError, match="FiNUFFT: locs must be a float32 or float64"):
        FiNUFFT(torch.zeros(4, 2, dtype=torch.int64), (4, 4))
    with pytest.raises(ShapeError, match="ndim 1, 2 or 3"):
        FiNUFFT(torch.zeros(4, 4), (4, 4, 4, 4))
    with pytest.raises(ValueError, match="grid_size has 3 entries"):
        FiNUFFT(locs, (4, 4, 4))
    with pytest.raises(ValueError, match="eps"):
        FiNUFFT(locs, (4, 4), eps=0.0)
    with pytest.raises(ShapeError, match="same batch dims"):
        FiNUFFT(locs, (4, 4), ishape=("C", "Nx", "Ny"), oshape=("D", "M"))
    with pytest.raises(ShapeError, match="sample dims"):
        FiNUFFT(torch.zeros(2, 4, 2), (4, 4), ishape=("Nx", "Ny"), oshape=("M",))
    with pytest.raises(DeviceError, match="finufft runs on CPU"):
        FiNUFFT(torch.zeros(4, 2, device="meta"), (4, 4))
    A = FiNUFFT(locs, (4, 4), ishape=("C", "Nx", "Ny"), oshape=("C", "M"))
    with pytest.raises(ShapeError, match=r"FiNUFFT\(\(C, Nx, Ny\) -> \(C, M\)\): input dim 'Ny' has size 5"):
        A(torch.zeros(2, 4, 5))
    with pytest.raises(ShapeError, match="input dim 'M' has size 3"):
        A.H(torch.zeros(2, 3, dtype=C64))
    with pytest.raises(TypeError, match="complex64 or complex128"):
        finufft_type2(torch.zeros(1, 1, 4), torch.zeros(1, 3, 1), 1e-6)
    with pytest.raises(TypeError, match="locs must be torch.float64"):
        finufft_type1(torch.zeros(1, 1, 3, dtype=C128), torch.zeros(1, 3, 1), [4], 1e-6)


def test_missing_finufft_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "finufft", None)
    with pytest.raises(ImportError, match=r"funclinop\[finufft\]"):
        FiNUFFT(torch.zeros(4, 2), (4, 4))
