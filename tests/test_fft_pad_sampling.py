"""FFT, Pad/Crop, PadDim/Truncate and Sampling: examples, errors, and agreement with torchlinops."""

import itertools

import pytest
import torch
import torch.utils._pytree as tp

import funclinop as fl
from funclinop.testing import check_adjoint, check_normal, check_pytree

C128 = torch.complex128


def crandn(*shape, dtype=C128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


@pytest.fixture(scope="module")
def tl():
    return pytest.importorskip("torchlinops")


# ---- FFT ---------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("centered", [False, True])
def test_fft_matches_torchlinops(tl, ndim, centered):
    shape = (2,) + (5, 4, 3)[:ndim]  # odd and even grid sizes
    x = crandn(*shape)
    A, B = fl.FFT(ndim, centered=centered), tl.FFT(ndim, centered=centered)
    assert A.ishape == tuple(str(d) for d in B.ishape)
    assert A.oshape == tuple(str(d) for d in B.oshape)
    torch.testing.assert_close(A(x), B(x))
    torch.testing.assert_close(A.H(x), B.H(x))
    torch.testing.assert_close(A.N(x), B.N(x))


def test_fft_centered_convention():
    x = crandn(5, 6)
    want = torch.fft.fftshift(
        torch.fft.fftn(torch.fft.ifftshift(x, dim=(-2, -1)), dim=(-2, -1), norm="ortho"), dim=(-2, -1)
    )
    torch.testing.assert_close(fl.FFT(2, centered=True)(x), want)
    # A delta at the centre (index n // 2) has a flat spectrum.
    delta = torch.zeros(5, 6, dtype=C128)
    delta[2, 3] = 1
    torch.testing.assert_close(fl.FFT(2, centered=True)(delta), torch.full((5, 6), 1 / 30**0.5, dtype=C128))


def test_fft_adjoint_is_inverse_fft_type():
    A = fl.FFT(2, batch_shape=("C",), grid_shapes=(("X", "Y"), ("U", "V")), centered=True)
    assert isinstance(A.H, fl.FFT) and A.H.inverse
    assert A.H.ishape == ("C", "U", "V") and A.H.oshape == ("C", "X", "Y")
    assert A.H.H == A
    assert A.N == fl.Identity(("C", "X", "Y"))
    x = crandn(3, 4, 5)
    check_adjoint(A, x)
    check_normal(A, x)
    torch.testing.assert_close(A.H(A(x)), x)
    assert A.size("X") is None and A.size("C") is None


def test_fft_tile():
    A = fl.FFT(2, batch_shape=("C",))
    assert A.tile({"C": slice(0, 2)}) is A
    assert A.tile({"Nx": slice(None)}) is A
    with pytest.raises(ValueError, match="FFT.*'Nx'"):
        A.tile({"Nx": slice(0, 2)})
    with pytest.raises(ValueError, match="FFT.*'Ky'"):
        A.tile({"Ky": slice(1, 3)})


def test_fft_bad_arguments():
    with pytest.raises(TypeError):
        fl.FFT(2.0)
    with pytest.raises(ValueError):
        fl.FFT(0)
    with pytest.raises(ValueError, match="name the dims"):
        fl.FFT(4)
    with pytest.raises(ValueError, match="pair"):
        fl.FFT(2, grid_shapes=(("X", "Y"),))
    with pytest.raises(fl.ShapeError, match="ndim=2"):
        fl.FFT(2, grid_shapes=(("X", "Y"), ("U",)))
    with pytest.raises(ValueError, match="repeated"):
        fl.FFT(1, batch_shape=("X",), grid_shapes=(("X",), ("U",)))
    with pytest.raises(fl.ShapeError):
        fl.FFT(2)(crandn(4))


@pytest.mark.parametrize("dynamic", [False, True])
def test_fft_compile_fullgraph(dynamic):
    import torch._dynamo

    torch._dynamo.reset()
    A = fl.FFT(2, centered=True)
    x = crandn(3, 4, 5)
    f = torch.compile(lambda x: A.H(A(x) * 2), fullgraph=True, dynamic=dynamic)
    torch.testing.assert_close(f(x), 2 * x)


# ---- Pad / Crop --------------------------------------------------------------

SIZES = [(4, 7), (4, 8), (5, 8), (5, 7), (3, 3), (1, 4), (6, 9)]


@pytest.mark.parametrize("n,m", SIZES)
def test_pad_crop_match_torchlinops_1d(tl, n, m):
    x, y = crandn(2, n), crandn(2, m, seed=1)
    P, Q = fl.Pad((m,), (n,)), tl.Pad((m,), (n,))
    torch.testing.assert_close(P(x), Q(x))
    torch.testing.assert_close(P.H(y), Q.H(y))
    C = fl.Crop((n,), (m,), ("Kx",), ("Nx",))
    D = tl.Crop((n,), (m,), ("Kx",), ("Nx",), ("...",))
    torch.testing.assert_close(C(y), D(y))
    torch.testing.assert_close(C.H(x), D.H(x))
    torch.testing.assert_close(C.N(y), D.N(y))


@pytest.mark.parametrize("sizes", list(itertools.product(SIZES, SIZES))[::5])
def test_pad_crop_match_torchlinops_2d(tl, sizes):
    (n0, m0), (n1, m1) = sizes
    x, y = crandn(3, n0, n1), crandn(3, m0, m1, seed=1)
    P, Q = fl.Pad((m0, m1), (n0, n1)), tl.Pad((m0, m1), (n0, n1))
    assert P.ishape == tuple(str(d) for d in Q.ishape)
    assert P.oshape == tuple(str(d) for d in Q.oshape)
    torch.testing.assert_close(P(x), Q(x))
    torch.testing.assert_close(P.H(y), Q.H(y))
    C = fl.Crop((n0, n1), (m0, m1))
    D = tl.Crop((n0, n1), (m0, m1), None, None, None)
    assert C.ishape == tuple(str(d) for d in D.ishape)
    torch.testing.assert_close(C(y), D(y))
    check_adjoint(P, x)
    check_normal(P, x)
    check_adjoint(C, y)
    check_normal(C, y)


def test_pad_keeps_the_centre():
    # The centre n // 2 of the small grid lands on the centre m // 2 of the big one.
    for n, m in [(4, 7), (5, 8), (5, 7), (4, 8)]:
        x = torch.zeros(n)
        x[n // 2] = 1
        assert int(fl.Pad((m,), (n,))(x).argmax()) == m // 2


def test_pad_crop_adjoints_and_normals():
    P = fl.Pad((6, 7), (3, 4), ("X", "Y"), ("U", "V"), ("C",))
    assert isinstance(P.H, fl.Crop) and isinstance(P.H.H, fl.Pad)
    assert P.H.H == P
    assert P.H == fl.Crop((3, 4), (6, 7), ("U", "V"), ("X", "Y"), ("C",))
    assert P.N == fl.Identity(("C", "X", "Y"))
    C = P.H
    N = C.N
    assert isinstance(N, fl.Diagonal) and N.ishape == C.ishape
    assert N.weight.dtype == torch.int8 and int(N.weight.sum()) == 12
    y = torch.randn(2, 6, 7, dtype=torch.float32)
    assert C.N(y).dtype == torch.float32
    torch.testing.assert_close(C.N(y), P(C(y)))
    assert P.dim_sizes() == {"X": 3, "Y": 4, "U": 6, "V": 7}


def test_pad_crop_tile():
    P = fl.Pad((6, 7), (3, 4), ("X", "Y"), ("U", "V"), ("C",))
    assert P.tile({"C": slice(0, 1)}) is P
    assert P.tile({"X": slice(0, 3)}) is P  # the whole dim
    for d in "XYUV":
        with pytest.raises(ValueError, match=f"Pad.*{d!r}"):
            P.tile({d: slice(0, 2)})
    with pytest.raises(ValueError, match="Crop.*'U'"):
        P.H.tile({"U": slice(1, 2)})


def test_pad_crop_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        fl.Pad((4, 4), (2,))
    with pytest.raises(ValueError, match="at least"):
        fl.Pad((3,), (4,))
    with pytest.raises(ValueError, match="at most"):
        fl.Crop((5,), (4,))
    with pytest.raises(TypeError):
        fl.Pad(4, 2)
    with pytest.raises(TypeError):
        fl.Pad((4.0,), (2,))
    with pytest.raises(fl.ShapeError, match="exactly 2 dims"):
        fl.Pad((4, 4), (2, 2), ("X",))
    with pytest.raises(fl.ShapeError, match="new name"):
        fl.Pad((4,), (2,), ("X",), ("X",))
    P = fl.Pad((6, 7), (3, 4))
    with pytest.raises(fl.ShapeError, match="'Ny' has size 5, expected 4"):
        P(torch.zeros(3, 5))


# With dynamic=True the pad widths and window bounds are symbolic too, and
# inductor (torch 2.13) fails to lower F.pad followed by that slice on a batched
# input ("Exponent must be non-negative"; plain torch code fails the same way):
# that case is traced and run through AOT autograd without inductor.
@pytest.mark.parametrize("dynamic, backend", [(False, "inductor"), (True, "aot_eager")])
def test_pad_compile_fullgraph_and_vmap(dynamic, backend):
    import torch._dynamo

    torch._dynamo.reset()
    P = fl.Pad((6, 7), (3, 4))
    x = torch.randn(2, 3, 4)
    f = torch.compile(lambda x: P.H(P(x)), fullgraph=True, dynamic=dynamic, backend=backend)
    torch.testing.assert_close(f(x), x)
    torch.testing.assert_close(torch.func.vmap(P)(x), P(x))
    check_pytree(P.H, torch.randn(6, 7))


# ---- PadDim / Truncate -------------------------------------------------------


def test_truncate_paddim_match_torchlinops(tl):
    x = crandn(3, 7)
    T = fl.Truncate(-1, 7, 4, ("A", "N"), ("A", "M"))
    U = tl.Truncate(-1, 7, 4, ("A", "N"), ("A", "M"))
    torch.testing.assert_close(T(x), U(x))
    y = crandn(3, 4, seed=1)
    torch.testing.assert_close(T.H(y), U.H(y))
    torch.testing.assert_close(T.N(x), U.N(x))
    P = fl.PadDim(0, 3, 5, ("N", "B"), ("M", "B"))
    Q = tl.PadDim(0, 3, 5, ("N", "B"), ("M", "B"))
    torch.testing.assert_close(P(x), Q(x))
    torch.testing.assert_close(P.H(P(x)), Q.H(Q(x)))


def test_truncate_paddim_adjoints_normals_tile():
    T = fl.Truncate(1, 7, 4, ("...", "N", "B"), ("...", "M", "B"))
    assert isinstance(T.H, fl.PadDim) and T.H.H == T
    assert T.H.ishape == T.oshape
    N = T.N
    assert isinstance(N, fl.Diagonal) and N.ishape == T.ishape
    x = crandn(2, 7, 3)
    check_adjoint(T, x)
    check_normal(T, x)
    assert T.H.N == fl.Identity(T.oshape)
    assert T.tile({"B": slice(0, 1)}) is T
    with pytest.raises(ValueError, match="Truncate.*'N'"):
        T.tile({"N": slice(0, 2)})
    with pytest.raises(ValueError, match="PadDim.*'M'"):
        T.H.tile({"M": slice(0, 2)})
    assert T.dim_sizes() == {"N": 7, "M": 4}


def test_truncate_paddim_bad_arguments():
    with pytest.raises(ValueError, match="to_length"):
        fl.Truncate(0, 3, 4, ("N",), ("M",))
    with pytest.raises(ValueError, match="from_length"):
        fl.PadDim(0, 5, 4, ("N",), ("M",))
    with pytest.raises(ValueError, match="non-negative"):
        fl.Truncate(0, -1, 0, ("N",), ("M",))
    with pytest.raises(ValueError, match="dim=0"):
        fl.Truncate(0, 3, 2, ("...", "N"), ("...", "M"))
    with pytest.raises(ValueError, match="dim=2"):
        fl.Truncate(2, 3, 2, ("A", "N"), ("A", "M"))
    with pytest.raises(fl.ShapeError, match="new name"):
        fl.Truncate(0, 3, 2, ("N",), ("N",))
    with pytest.raises(TypeError):
        fl.PadDim(0, 2.0, 4, ("N",), ("M",))


# ---- Sampling ----------------------------------------------------------------


def test_sampling_matches_torchlinops(tl):
    g = torch.Generator().manual_seed(0)
    idx = (torch.randint(0, 5, (4, 6), generator=g), torch.randint(0, 7, (4, 6), generator=g))
    A = fl.Sampling(idx, (5, 7), ("R", "M"), ("Kx", "Ky"))
    B = tl.Sampling(idx, (5, 7), ("R", "M"), ("Kx", "Ky"))
    x, y = crandn(3, 5, 7), crandn(3, 4, 6, seed=1)
    torch.testing.assert_close(A(x), B(x))
    torch.testing.assert_close(A.H(y), B.H(y))
    torch.testing.assert_close(A.N(x), B.N(x))
    check_adjoint(A, x)
    check_normal(A, x)


def test_sampling_repeated_indices_accumulate():
    S = fl.Sampling((torch.tensor([1, 1, 3, 1]), torch.tensor([0, 0, 2, 0])), (4, 3))
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    want = torch.zeros(4, 3)
    want[1, 0], want[3, 2] = 7.0, 3.0
    torch.testing.assert_close(S.H(y), want)
    counts = torch.zeros(4, 3, dtype=torch.int64)
    counts[1, 0], counts[3, 2] = 3, 1
    assert isinstance(S.N, fl.Diagonal) and torch.equal(S.N.weight, counts)
    assert S.N.ishape == S.N.oshape == S.ishape == ("...", "Nx", "Ny")
    x = torch.randn(2, 4, 3, dtype=torch.float32)
    assert S.N(x).dtype == torch.float32
    torch.testing.assert_close(S.N(x), S.H(S(x)))


def test_sampling_broadcast_indices_and_defaults():
    S = fl.Sampling((torch.arange(3)[:, None], torch.tensor([0, 2])), (3, 4))
    assert S.oshape == ("...", "M", "M1") and S.dim_sizes() == {"Nx": 3, "Ny": 4, "M": 3, "M1": 2}
    x = torch.arange(12.0).reshape(3, 4)
    torch.testing.assert_close(S(x), x[:, [0, 2]])
    assert S.locs.shape == (3, 2, 2)


def test_sampling_from_mask(tl):
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(5, 6, generator=g) < 0.4
    A = fl.Sampling.from_mask(mask, (5, 6), ("M",), ("Kx", "Ky"), ("C",))
    B = tl.Sampling.from_mask(mask, (5, 6), ("M",), ("Kx", "Ky"), ("C",))
    x = crandn(2, 5, 6)
    torch.testing.assert_close(A(x), B(x))
    torch.testing.assert_close(A(x), x[:, mask])
    torch.testing.assert_close(A.H(A(x)), x * mask)
    assert torch.equal(A.N.weight, mask.long())
    assert fl.Sampling.from_mask(mask) == fl.Sampling.from_mask(mask, (5, 6))
    with pytest.raises(fl.ShapeError, match="input_size"):
        fl.Sampling.from_mask(mask, (5, 7))
    with pytest.raises(TypeError):
        fl.Sampling.from_mask(mask.tolist())


def test_sampling_tile():
    idx = (torch.randint(0, 5, (4, 6)), torch.randint(0, 7, (4, 6)))
    S = fl.Sampling(idx, (5, 7), ("R", "M"), ("Kx", "Ky"), ("C",))
    T = S.tile({"M": slice(2, 5), "C": slice(0, 1)})
    assert isinstance(T, fl.Sampling) and T.oshape == S.oshape
    assert torch.equal(T.idx[0], idx[0][:, 2:5]) and torch.equal(T.idx[1], idx[1][:, 2:5])
    x = crandn(2, 5, 7)
    torch.testing.assert_close(T(x), S(x)[..., 2:5])
    assert S.tile({"C": slice(0, 1)}) is S
    assert S.tile({"Kx": slice(0, 5)}) is S
    with pytest.raises(ValueError, match="Sampling.*'Kx'"):
        S.tile({"Kx": slice(0, 2)})


def test_sampling_bad_arguments():
    i = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"'Ny' has value 4, outside \[0, 3\] \(size 4\)"):
        fl.Sampling((i, torch.tensor([0, 4])), (3, 4))
    with pytest.raises(ValueError, match="value -1"):
        fl.Sampling((torch.tensor([-1, 0]),), (3,))
    with pytest.raises(fl.ShapeError, match="2 index tensors"):
        fl.Sampling((i, i), (3,))
    with pytest.raises(fl.ShapeError, match="do not broadcast"):
        fl.Sampling((i, torch.tensor([0, 1, 2])), (3, 4))
    with pytest.raises(TypeError, match="integer"):
        fl.Sampling((i.float(),), (3,))
    with pytest.raises(TypeError, match="tuple"):
        fl.Sampling(i, (3,))
    with pytest.raises(TypeError):
        fl.Sampling((i,), 3)
    with pytest.raises(fl.ShapeError, match="output_shape"):
        fl.Sampling((i,), (3,), ("M", "R"))
    with pytest.raises(fl.ShapeError, match="share"):
        fl.Sampling((i,), (3,), ("Nx",))
    S = fl.Sampling((i,), (3,))
    with pytest.raises(fl.ShapeError, match="'Nx' has size 4, expected 3"):
        S(torch.zeros(4))


@pytest.mark.parametrize("dynamic", [False, True])
def test_sampling_transforms(dynamic):
    import torch._dynamo

    torch._dynamo.reset()
    idx = (torch.tensor([[0, 2, 2], [1, 1, 0]]), torch.tensor([[3, 0, 0], [1, 2, 3]]))
    S = fl.Sampling(idx, (3, 4), ("R", "M"), ("X", "Y"))
    x = crandn(5, 3, 4)
    y = S(x)
    f = torch.compile(lambda x, y: (S(x), S.H(y)), fullgraph=True, dynamic=dynamic)
    a, b = f(x, y)
    torch.testing.assert_close(a, y)
    torch.testing.assert_close(b, S.H(y))
    # vmap over inputs and over a stack of operators
    torch.testing.assert_close(torch.func.vmap(S.H)(y), S.H(y))
    stacked = tp.tree_map(lambda t: torch.stack([t, t.flip(-1)]), S)
    got = torch.func.vmap(lambda op, y: op.H(y), in_dims=(0, None))(stacked, y[0])
    flipped = fl.Sampling(tuple(t.flip(-1) for t in idx), (3, 4), ("R", "M"), ("X", "Y"))
    torch.testing.assert_close(got[1], flipped.H(y[0]))
    torch.testing.assert_close(got[0], S.H(y[0]))
    # grad through the input
    g = torch.func.grad(lambda x: S(x).abs().square().sum())(x)
    torch.testing.assert_close(g, 2 * S.N(x))
    check_pytree(S, x)
