"""Sampling: examples, errors, and agreement with torchlinops."""

import pytest
import torch
import torch.utils._pytree as tp

import funclinop as fl
from funclinop.testing import check_adjoint, check_normal, check_pytree

C128 = torch.complex128


def crandn(*shape, dtype=C128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


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
