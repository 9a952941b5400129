"""FFT: conventions, errors, and agreement with torchlinops."""

import pytest
import torch

import funclinop as fl
from funclinop.testing import check_adjoint, check_normal

C128 = torch.complex128


def crandn(*shape, dtype=C128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


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
