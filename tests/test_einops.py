"""Rearrange, SumReduce and Repeat: dense references, errors, and agreement with torchlinops."""

import doctest

import pytest
import torch

import funclinop as fl
from funclinop.errors import ShapeError
from funclinop.ops import einops
from funclinop.testing import check_dense

C128 = torch.complex128


def randn(*shape, dtype=C128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


def test_docstrings():
    result = doctest.testmod(einops, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


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
    check_dense(B, (2, 3))
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
    check_dense(S, (2, 3))
    check_dense(R, (4,))
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
