"""Splits that used to give wrong numbers: each is now exact or refused with a
ValueError naming the dim, before anything is built."""

import pytest
import torch

import funclinop as fl


def batch(A, sizes, stack=True):
    return fl.create_batched_linop(A, fl.BatchSpec(sizes, stack=stack))


def assert_same_operator(B, A, x):
    y = A(x)
    torch.testing.assert_close(B(x), y)
    torch.testing.assert_close(B.H(y), A.H(y))
    torch.testing.assert_close(B.N(x), A.N(x))


# ---- renamed dims -------------------------------------------------------------------
RENAMES = [
    fl.Identity(("N",), ("M",)),
    fl.Zero(("N",), ("M",)),
    fl.Identity(("...", "N", "K"), ("...", "M", "K")),
    fl.Rearrange("n", "n", ("N",), ("M",)),
    fl.Rearrange("n k", "k n", ("N", "K"), ("K", "M")),
]


@pytest.mark.parametrize("rename", RENAMES, ids=lambda op: op._name())
@pytest.mark.parametrize("stack", [True, False])
def test_a_dim_renamed_inside_a_chain_is_refused(rename, stack):
    shape = (4, 3) if "K" in rename.dims else (4,)
    w = torch.arange(1.0, 1.0 + torch.tensor(shape).prod()).reshape(shape)
    A = fl.Chain(fl.Diagonal(w, rename.ishape), rename)
    for dim in ("N", "M"):
        with pytest.raises(ValueError, match=f"'{dim}'"):
            batch(A, {dim: 2}, stack)
        with pytest.raises(ValueError, match=f"'{dim}'"):
            fl.split_linop(A, {dim: 2})
    with pytest.raises(ValueError, match="'N'"):
        fl.tile(A, {"N": slice(0, 2)})


def test_the_renaming_operator_is_named_in_the_error():
    A = fl.Chain(fl.Diagonal(torch.tensor([1.0, 2, 3, 4]), ("N",)), fl.Identity(("N",), ("M",)))
    with pytest.raises(ValueError, match=r"Identity\(\(N\) -> \(M\)\).*renames it"):
        batch(A, {"N": 2})


def test_a_dim_kept_by_a_renaming_operator_still_splits():
    w = torch.randn(4, 3)
    A = fl.Chain(fl.Diagonal(w, ("N", "K")), fl.Identity(("N", "K"), ("M", "K")))
    assert_same_operator(batch(A, {"K": 2}), A, torch.randn(4, 3))


# ---- block-diagonal between two dims ----------------------------------------------
@pytest.mark.parametrize("stack", [True, False])
def test_block_diagonal_stack_from_one_dim_to_another_is_refused(stack):
    A = fl.Stack(fl.Scalar(1.0, ("N",)), fl.Scalar(10.0, ("N",)), idim="S", odim="T")
    torch.testing.assert_close(A(torch.ones(2, 2)), torch.tensor([[1.0, 1.0], [10.0, 10.0]]))
    for dim in ("S", "T"):
        with pytest.raises(ValueError, match=f"cannot split dim '{dim}'.*block-diagonal from 'S' to 'T'"):
            batch(A, {dim: 1}, stack)
        with pytest.raises(ValueError, match=f"'{dim}'"):
            fl.tile(A, {dim: slice(0, 1)})


def test_block_diagonal_stack_splits_over_its_other_dims():
    A = fl.Stack(fl.Diagonal(torch.randn(3), ("N",)), fl.Diagonal(torch.randn(3), ("N",)), idim="S", odim="T")
    for stack in (True, False):
        assert_same_operator(batch(A, {"N": 2}, stack), A, torch.randn(2, 3))


def _nonsquare_concat():
    g = torch.Generator().manual_seed(0)
    blocks = [fl.Dense(torch.randn(2, m, n, generator=g), ("B", "M", "N"), ("B", "N"), ("B", "M"))
              for m, n in ((3, 4), (5, 6))]
    return fl.Concat(*blocks, idim="N", odim="M"), torch.randn(2, 10, generator=g)


@pytest.mark.parametrize("stack", [True, False])
def test_block_diagonal_concat_of_nonsquare_blocks_splits_over_a_batch_dim(stack):
    A, x = _nonsquare_concat()
    assert A(x).shape == (2, 8)
    assert_same_operator(batch(A, {"B": 1}, stack), A, x)
    tiles, _, _ = fl.split_linop(A, {"B": 1})
    assert [t.size("N") for t in tiles] == [10, 10] and [t.size("M") for t in tiles] == [8, 8]


@pytest.mark.parametrize("dim", ["M", "N"])
def test_block_diagonal_concat_between_two_dims_is_refused_along_them(dim):
    A, _ = _nonsquare_concat()
    with pytest.raises(ValueError, match=f"cannot split dim '{dim}'.*block-diagonal from 'N' to 'M'"):
        batch(A, {dim: 5})
    with pytest.raises(ValueError, match=f"'{dim}'"):
        fl.tile(A, {dim: slice(0, 5)})


def test_concat_along_a_dim_on_one_side_only_is_refused_at_construction():
    with pytest.raises(fl.ShapeError, match="two sizes"):
        fl.Concat(fl.Scalar(2.0, ("N",)), fl.Scalar(3.0, ("N",)), odim="N", block_sizes=(2, 3))


# ---- broadcast dims ---------------------------------------------------------------
def test_broadcast_dim_of_size_other_than_one_is_refused():
    with pytest.raises(fl.ShapeError, match="broadcast dim 'C' must have size 1"):
        fl.Dense(torch.randn(3, 4), ("C", "N"), ("C", "N"), ("C", "N"), broadcast_dims=("C",))
    with pytest.raises(fl.ShapeError, match="broadcast dim 'C' must have size 1"):
        fl.Diagonal(torch.randn(3, 4), ("C", "N"), broadcast_dims=("C",))


def test_a_broadcast_dim_fixed_elsewhere_splits():
    D = fl.Dense(torch.randn(1, 4), ("C", "N"), ("C", "N"), ("C", "N"), broadcast_dims=("C",))
    A = fl.Chain(fl.Diagonal(torch.randn(3, 4), ("C", "N")), D)
    for stack in (True, False):
        B = batch(A, {"C": 1}, stack)
        assert B(torch.randn(3, 4)).shape == (3, 4)
        assert_same_operator(B, A, torch.randn(3, 4))


# ---- tiles that do not fix their size; empty dims ---------------------------------
@pytest.mark.parametrize("bs", [1, 2, 3, 4])
@pytest.mark.parametrize("stack", [True, False])
def test_uneven_tiles_of_blocks_that_do_not_fix_their_size(bs, stack):
    A = fl.Concat(fl.Scalar(2.0, ("N",)), fl.Scalar(3.0, ("N",)), idim="N", odim="N", block_sizes=(2, 3))
    B = batch(A, {"N": bs}, stack)
    assert B.size("N") == 5
    assert_same_operator(B, A, torch.arange(5.0))


@pytest.mark.parametrize("stack", [True, False])
def test_a_dim_of_size_zero_splits_into_one_empty_tile(stack):
    A = fl.Dense(torch.randn(3, 0), ("M", "N"), ("N",), ("M",))
    B = batch(A, {"N": 2}, stack)
    assert_same_operator(B, A, torch.randn(0))
    tiles, ins, outs = fl.split_linop(A, {"N": 2})
    assert len(tiles) == 1 and ins[0] == (Ellipsis, slice(0, 0))


# ---- internal names that shadow a carried dim ---------------------------------------
def test_a_chain_that_would_carry_a_dim_twice_is_refused_at_construction():
    inner = fl.Chain(fl.Dense(torch.randn(2, 3), ("N", "X"), ("...", "X"), ("...", "N")),
                     fl.Dense(torch.randn(3, 2), ("X", "N"), ("...", "N"), ("...", "X")))
    with pytest.raises(fl.ShapeError, match=r"\(N, N\)"):
        fl.Chain(fl.Diagonal(torch.randn(2, 3), ("N", "X")), inner)


def test_chain_kind_refuses_an_internal_dim_named_like_a_carried_one():
    from funclinop.compose import chain_kind

    inner = fl.Chain(fl.Dense(torch.randn(2, 3), ("N", "X"), ("X",), ("N",)),
                     fl.Dense(torch.randn(3, 2), ("X", "N"), ("N",), ("X",)))
    assert inner.split_kind("N") == "sum"
    assert chain_kind([inner], "N", present=False) == "sum"
    assert chain_kind([inner], "N", present=True) is None
