"""Convolution and Correlation: dense references, errors, transforms, and agreement with torchlinops."""

import doctest

import pytest
import torch

import funclinop as fl
from funclinop.errors import ShapeError
from funclinop.ops import conv
from funclinop.testing import check_dense, to_dense

C128 = torch.complex128


def randn(*shape, dtype=C128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


def test_docstrings():
    result = doctest.testmod(conv, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


CONV_CASES = [((3,), (8,)), ((4,), (7,)), ((3, 2), (6, 5)), ((2, 3, 4), (5, 6, 7))]


@pytest.mark.parametrize("ksize, grid", CONV_CASES)
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_convolution_matches_torchlinops(ksize, grid, mode):
    tl = pytest.importorskip("torchlinops")
    k = randn(*ksize, seed=1)
    A = fl.Convolution(k, padding_mode=mode)
    T = tl.Convolution(k, padding_mode=mode)
    x = randn(2, *grid)
    y = A(x)
    torch.testing.assert_close(y, T(x))
    torch.testing.assert_close(A.H(y), T.H(y))
    assert A.oshape == ("...",) + tuple(T.oshape[1:]) or A.oshape[1:] == tuple(str(d) for d in T.oshape[1:])


@pytest.mark.parametrize("ksize, grid", CONV_CASES[:3] + [((5,), (2,)), ((9,), (3,))])
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_convolution_dense_reference(ksize, grid, mode):
    k = randn(*ksize, seed=2)
    A = fl.Convolution(k, padding_mode=mode)
    M = check_dense(A, grid)
    # Direct definition: y[i] = Σ_m k[m] x[i - m + K // 2] (wrapped or zero outside).
    if len(grid) == 1:
        (n,), (K,) = grid, ksize
        ref = torch.zeros(n, n, dtype=C128)
        for i in range(n):
            for m in range(K):
                j = i - m + K // 2
                if mode == "circular":
                    ref[i, j % n] += k[m]
                elif 0 <= j < n:
                    ref[i, j] += k[m]
        torch.testing.assert_close(M, ref)
    C = A.H
    assert isinstance(C, fl.Correlation) and C.H == A
    torch.testing.assert_close(to_dense(C, grid), M.conj().T)


def test_convolution_shapes_and_tile():
    k = randn(3, 3)
    A = fl.Convolution(k, batch_shape=("B",), in_grid_shape=("C", "X", "Y"), out_grid_shape=("C", "U", "V"))
    assert A.ishape == ("B", "C", "X", "Y") and A.oshape == ("B", "C", "U", "V")
    x = randn(2, 4, 5, 6)
    y = A(x)
    for c in range(4):
        torch.testing.assert_close(y[:, c], fl.Convolution(k)(x[:, c]))
    assert A.tile({"B": slice(0, 1), "C": slice(1, 2)}) is A
    with pytest.raises(ValueError, match="Convolution.*'X'"):
        A.tile({"X": slice(0, 2)})
    D = fl.Convolution(randn(3))
    assert D.ishape == ("...", "Nx") and D.oshape == ("...", "Nx1")


@pytest.mark.parametrize("make, err, msg", [
    (lambda: fl.Convolution(randn(3, 3), in_grid_shape=("X",)), ShapeError, "2 dims but the grid"),
    (lambda: fl.Convolution(randn(2, 2, 2, 2)), ValueError, "1, 2 or 3"),
    (lambda: fl.Convolution(randn(3), padding_mode="reflect"), ValueError, "padding_mode"),
    (lambda: fl.Convolution([1.0, 2.0]), TypeError, "kernel"),
    (lambda: fl.Convolution(torch.ones(3, dtype=torch.int64)), TypeError, "floating"),
    (lambda: fl.Convolution(randn(3), in_grid_shape=("X",), out_grid_shape=("U", "V")), ShapeError, "as many"),
])
def test_convolution_bad_input(make, err, msg):
    with pytest.raises(err, match=msg):
        make()


def test_convolution_transforms():
    k = randn(3, 2, dtype=torch.float64)
    A = fl.Convolution(k, padding_mode="circular")
    xs = randn(3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(torch.func.vmap(A)(xs), A(xs))
    g = torch.func.grad(lambda op: op(xs[0]).square().sum())(A)
    assert type(g) is fl.Convolution and g.kernel.shape == k.shape
