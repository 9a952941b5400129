"""ArrayToBlocks and BlocksToArray: dense references, errors, transforms, and agreement with torchlinops."""

import doctest

import pytest
import torch

import funclinop as fl
from funclinop.errors import ShapeError
from funclinop.ops import blocks
from funclinop.testing import check_dense, to_dense

C128 = torch.complex128


def randn(*shape, dtype=C128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


def test_docstrings():
    result = doctest.testmod(blocks, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


BLOCK_CASES = [
    ((9,), (3,), (2,)),
    ((8,), (4,), (4,)),
    ((7, 8), (3, 2), (2, 3)),
    ((6, 6), (3, 3), (1, 1)),
    ((5, 6, 7), (2, 3, 3), (1, 2, 3)),
]


def _bool_mask(block, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(block, generator=g) > 0.4
    m.view(-1)[0] = True
    return m


@pytest.mark.parametrize("grid, block, stride", BLOCK_CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_blocks_match_torchlinops(grid, block, stride, masked):
    tl = pytest.importorskip("torchlinops")
    mask = _bool_mask(block) if masked else None
    A = fl.ArrayToBlocks(grid, block, stride, mask, batch_shape=("...",))
    T = tl.ArrayToBlocks(grid, block, stride, mask)
    x = randn(2, *grid)
    y = A(x)
    torch.testing.assert_close(y, T(x), rtol=0, atol=0)
    torch.testing.assert_close(A.H(y), T.H(y))
    B = fl.BlocksToArray(grid, block, stride, mask)
    TB = tl.BlocksToArray(grid, block, stride, mask)
    torch.testing.assert_close(B(y), TB(y))
    torch.testing.assert_close(B.H(x), TB.H(x))


@pytest.mark.parametrize("grid, block, stride", BLOCK_CASES[:4])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_blocks_dense_reference(grid, block, stride, mask_kind):
    mask = {"none": None, "bool": _bool_mask(block, 1), "float": randn(*block, dtype=torch.float64)}[mask_kind]
    A = fl.ArrayToBlocks(grid, block, stride, mask)
    M = check_dense(A, grid)
    if mask is not None:  # the mask says where the operator lives: its normal is one Diagonal there
        assert isinstance(A.N, fl.Diagonal)
        torch.testing.assert_close(A.N.weight.to(C128).reshape(-1), torch.diag(M.conj().T @ M))
    B = A.H
    assert isinstance(B, fl.BlocksToArray) and B.H == A
    nb = A(torch.zeros(grid, dtype=C128)).shape
    torch.testing.assert_close(to_dense(B, tuple(nb)), M.conj().T)


def test_blocks_shapes_names_and_sizes():
    A = fl.ArrayToBlocks((7, 8), (3, 2), (2, 3), batch_shape=("C",), array_shape=("X", "Y"),
                         blocks_shape=("BX", "BY", "KX", "KY"))
    assert A.ishape == ("C", "X", "Y") and A.oshape == ("C", "BX", "BY", "KX", "KY")
    assert [A.size(d) for d in A.oshape[1:]] == [3, 3, 3, 2]
    assert A.size("X") == 7 and A.size("C") is None
    D = fl.ArrayToBlocks((4, 4), (2, 2), (2, 2), _bool_mask((2, 2)))
    assert D.oshape == ("...", "Bx", "By", "K")
    with pytest.raises(ShapeError, match="'X'"):
        A(torch.zeros(1, 6, 8))


def test_blocks_tile():
    A = fl.ArrayToBlocks((6,), (3,), (1,), batch_shape=("C",), array_shape=("X",), blocks_shape=("B", "K"))
    assert A.tile({"C": slice(0, 2)}) is A
    assert A.tile({"X": slice(None)}) is A
    with pytest.raises(ValueError, match="ArrayToBlocks.*'X'"):
        A.tile({"X": slice(0, 3)})
    with pytest.raises(ValueError, match="BlocksToArray.*'B'"):
        A.H.tile({"B": slice(0, 2)})


@pytest.mark.parametrize("kwargs, err, msg", [
    (dict(grid_size=(4,), block_size=(5,), stride=(1,)), ShapeError, "larger"),
    (dict(grid_size=(4, 4), block_size=(2,), stride=(1, 1)), ValueError, "entries"),
    (dict(grid_size=(4,), block_size=(2,), stride=(0,)), ValueError, "positive"),
    (dict(grid_size=(4, 4, 4, 4), block_size=(2,) * 4, stride=(1,) * 4), ValueError, "1, 2 or 3"),
    (dict(grid_size="4", block_size=(2,), stride=(1,)), TypeError, "tuple"),
    (dict(grid_size=(4,), block_size=(2,), stride=(1,), mask=torch.ones(3, dtype=torch.bool)), ShapeError, "mask"),
    (dict(grid_size=(4,), block_size=(2,), stride=(1,), mask=torch.zeros(2, dtype=torch.bool)), ValueError, "selects no"),
    (dict(grid_size=(4,), block_size=(2,), stride=(1,), mask=[1, 0]), TypeError, "mask"),
    (dict(grid_size=(4,), block_size=(2,), stride=(1,), blocks_shape=("B",)), ShapeError, "blocks_shape"),
    (dict(grid_size=(4,), block_size=(2,), stride=(1,), array_shape=("X", "Y")), ShapeError, "array_shape"),
])
def test_blocks_bad_input(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        fl.ArrayToBlocks(**kwargs)


def test_blocks_transforms():
    mask = randn(2, 3, dtype=torch.float64)
    A = fl.ArrayToBlocks((5, 6), (2, 3), (1, 2), mask)
    xs = randn(3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(torch.func.vmap(A)(xs), A(xs))
    g = torch.func.grad(lambda x: A(x).square().sum())(xs[0])
    torch.testing.assert_close(g, 2 * A.N(xs[0]))
    gm = torch.func.grad(lambda op: op(xs[0]).square().sum())(A)
    assert type(gm) is fl.ArrayToBlocks and gm.mask.shape == mask.shape


@pytest.mark.parametrize("dynamic", [False, True])
def test_blocks_compile_fullgraph(dynamic):
    import torch._dynamo

    torch._dynamo.reset()
    A = fl.ArrayToBlocks((6, 7), (3, 3), (2, 2), _bool_mask((3, 3)))
    # inductor's code generation is exercised with static shapes; dynamic ones trace through aot_eager
    f = torch.compile(lambda op, x: op.H(op(x)), fullgraph=True, dynamic=dynamic,
                      backend="aot_eager" if dynamic else "inductor")
    x = randn(2, 6, 7)
    torch.testing.assert_close(f(A, x), A.H(A(x)))
