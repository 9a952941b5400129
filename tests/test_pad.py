"""Pad/Crop and PadDim/Truncate: examples, errors, and agreement with torchlinops."""

import itertools

import pytest
import torch

import funclinop as fl
from funclinop.testing import check_adjoint, check_normal, check_pytree

C128 = torch.complex128


def crandn(*shape, dtype=C128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


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
    assert N.ishape == N.oshape == C.ishape and not fl.device.leaf_devices(N)  # no tensor: any device
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
    assert N.ishape == N.oshape == T.ishape and not fl.device.leaf_devices(N)
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
