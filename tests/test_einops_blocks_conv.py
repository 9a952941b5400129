"""Rearrange / SumReduce / Repeat, ArrayToBlocks / BlocksToArray, Convolution / Correlation."""

import doctest

import pytest
import torch

import funclinop as fl
from funclinop.errors import ShapeError
from funclinop.ops import blocks, conv, einops

C128 = torch.complex128


def randn(*shape, dtype=C128, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        return torch.randn(shape, generator=g, dtype=dtype)
    return torch.randn(shape, generator=g, dtype=dtype)


def matrix(A, ishape, dtype=C128):
    """The operator's matrix, built column by column from unit inputs."""
    n = 1
    for s in ishape:
        n *= s
    cols = [A(torch.eye(n, dtype=dtype)[j].reshape(ishape)).reshape(-1) for j in range(n)]
    return torch.stack(cols, dim=1)


def check_matrix(A, ishape, dtype=C128):
    M = matrix(A, ishape, dtype)
    y = randn(M.shape[0], dtype=dtype, seed=3)
    oshape = A(torch.zeros(ishape, dtype=dtype)).shape
    torch.testing.assert_close(A.H(y.reshape(oshape)).reshape(-1), M.conj().T @ y)
    x = randn(*ishape, dtype=dtype, seed=4)
    torch.testing.assert_close(A.N(x).reshape(-1), M.conj().T @ (M @ x.reshape(-1)))
    return M


def test_docstrings():
    for mod in (einops, blocks, conv):
        result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, mod.__name__


# ---- einops -----------------------------------------------------------------


EINOPS_CASES = [
    ("a b c", "c (a b)", ("A", "B", "C"), ("C", "AB"), {}, (2, 3, 4)),
    ("(c h) w", "h w c", ("CH", "W"), ("H", "W", "C"), {"c": 2}, (6, 5)),
    ("... a b", "... b () a", ("...", "A", "B"), ("...", "B", "U", "A"), {}, (3, 2, 4)),
    ("a 1 b", "(b a)", ("A", "O", "B"), ("BA",), {}, (2, 1, 3)),
]


@pytest.mark.parametrize("ip, op, ishape, oshape, lengths, size", EINOPS_CASES)
def test_rearrange_matches_torchlinops(ip, op, ishape, oshape, lengths, size):
    tl = pytest.importorskip("torchlinops")
    x = randn(*size)
    A = fl.Rearrange(ip, op, ishape, oshape, lengths)
    T = tl.Rearrange(ip, op, ishape, oshape, lengths)
    y = A(x)
    torch.testing.assert_close(y, T(x), rtol=0, atol=0)
    if lengths or "(" not in op:
        torch.testing.assert_close(A.H(y), T.H(y), rtol=0, atol=0)
        torch.testing.assert_close(A.H(y), x, rtol=0, atol=0)
    assert isinstance(A.N, fl.Identity)


def test_rearrange_adjoint_needs_lengths():
    A = fl.Rearrange("a b", "(a b)", ("A", "B"), ("AB",))
    assert A(torch.zeros(2, 3)).shape == (6,)
    with pytest.raises(ValueError, match="axes_lengths"):
        _ = A.H
    B = fl.Rearrange("a b", "(a b)", ("A", "B"), ("AB",), {"a": 2})
    assert B.size("AB") is None and B.size("A") == 2
    check_matrix(B, (2, 3))
    assert B.H.H == B


def test_rearrange_tile():
    A = fl.Rearrange("a b c", "(a c) b", ("A", "B", "C"), ("AC", "B"), {"a": 2, "b": 3})
    T = A.tile({"B": slice(0, 2)})
    assert dict(T.axes_lengths)["b"] == 2
    assert T(torch.zeros(2, 2, 4)).shape == (8, 2)
    with pytest.raises(ValueError, match="Rearrange.*'A'"):
        A.tile({"A": slice(0, 1)})
    assert A.tile({"A": slice(None)}) == A


@pytest.mark.parametrize("ip, op, msg", [
    ("a (b", "a b", "unbalanced"),
    ("a b", "a c", "one side"),
    ("a a", "a", "twice"),
    ("a ... b", "a b ...", "lead"),
    ("(a ...)", "a", "parentheses"),
    ("a 2", "a", "anonymous"),
    ("a-b", "a b", "parse|invalid"),
])
def test_rearrange_bad_patterns(ip, op, msg):
    with pytest.raises(ValueError, match=msg):
        fl.Rearrange(ip, op, ("A", "B"), ("A", "B"))


def test_rearrange_bad_shapes():
    with pytest.raises(ShapeError):
        fl.Rearrange("a b", "b a", ("A",), ("B", "A"))
    with pytest.raises(TypeError):
        fl.Rearrange(3, "a", ("A",), ("A",))
    with pytest.raises(ValueError, match="all but one"):
        fl.Rearrange("(a b c)", "a b c", ("ABC",), ("A", "B", "C"), {"a": 2})


def test_sum_reduce_repeat_match_torchlinops():
    tl = pytest.importorskip("torchlinops")
    x = randn(2, 3, 4)
    S = fl.SumReduce(("A", "B", "C"), ("C", "A"), sizes={"B": 3})
    T = tl.SumReduce(("A", "B", "C"), ("C", "A"))
    torch.testing.assert_close(S(x), T(x))
    y = randn(4, 2)
    torch.testing.assert_close(S.H(y), T.H(y).expand(2, 3, 4))  # torchlinops leaves B at size 1
    R = fl.Repeat({"B": 3}, ("C", "A"), ("A", "B", "C"))
    TR = tl.Repeat({"B": 3}, ("C", "A"), ("A", "B", "C"))
    torch.testing.assert_close(R(y), TR(y))
    torch.testing.assert_close(R.H(x), TR.H(x))


def test_sum_reduce_repeat_adjoint_pairs():
    S = fl.SumReduce(("A", "B"), ("A",), sizes={"B": 3})
    assert isinstance(S.H, fl.Repeat) and isinstance(S.H.H, fl.SumReduce)
    assert S.H.H == S
    R = fl.Repeat({"C": 2}, ("N",), ("C", "N"))
    assert isinstance(R.H, fl.SumReduce) and R.H.H == R
    check_matrix(S, (2, 3))
    check_matrix(R, (4,))
    assert isinstance(R.N, fl.Scalar) and float(R.N.weight) == 2.0
    # A broadcast adjoint (a size-1 dim, as in torchlinops) is asked for by name.
    U = fl.SumReduce(("A", "B"), ("A",), broadcast_dims=("B",))
    assert U.H(torch.ones(2)).shape == (2, 1)
    assert U.H.broadcast_dims == ("B",) and U.H.H == U


def test_repeat_tile_and_errors():
    R = fl.Repeat({"C": 4}, ("N",), ("C", "N"))
    assert R.tile({"C": slice(1, 3)}).size("C") == 2
    assert R.tile({"N": slice(0, 1)}) == R
    B = fl.Repeat({}, ("N",), ("C", "N"), broadcast_dims=("C",))
    assert B.size("C") is None and B(torch.ones(3)).shape == (1, 3)
    with pytest.raises(ValueError, match="no repeat count"):
        fl.Repeat({}, ("N",), ("C", "N"))
    with pytest.raises(ValueError, match="n_repeats 1"):
        fl.Repeat({"C": 2}, ("N",), ("C", "N"), broadcast_dims=("C",))
    with pytest.raises(ShapeError):
        fl.Repeat({"C": 2}, ("N", "M"), ("C", "N"))
    with pytest.raises(ShapeError):
        fl.SumReduce(("A",), ("A",))
    with pytest.raises(ShapeError):
        fl.SumReduce(("A", "B"), ("C",))
    with pytest.raises(ValueError):
        fl.Repeat({"C": 0}, ("N",), ("C", "N"))
    S = fl.SumReduce(("A", "B"), ("A",), sizes={"B": 5})
    assert S.tile({"B": slice(0, 2)}).size("B") == 2


# ---- blocks -----------------------------------------------------------------

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
    M = check_matrix(A, grid)
    assert isinstance(A.N, fl.Diagonal)
    torch.testing.assert_close(A.N.weight.to(C128).reshape(-1), torch.diag(M.conj().T @ M))
    B = A.H
    assert isinstance(B, fl.BlocksToArray) and B.H == A
    nb = A(torch.zeros(grid, dtype=C128)).shape
    torch.testing.assert_close(matrix(B, tuple(nb)), M.conj().T)


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


# ---- convolution --------------------------------------------------------------

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
    M = check_matrix(A, grid)
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
    torch.testing.assert_close(matrix(C, grid), M.conj().T)


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
