"""Splitting and batching: for random trees and random specs, the batched
operator equals the original and the tiles reassemble exactly."""

import random

import optree
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import funclinop as fl
from funclinop.dims import named
from funclinop.testing import rtol_for
from funclinop.testing import strategies as fst


def rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-30))


def splittable(op):
    """Dims of ``op`` (internal ones too) with a known size that tiles rebuild."""
    out = []
    for d in sorted(fl.split._all_dims(op)):
        n = op.size(d)
        if n is None or op.split_kind(d) is None:
            continue
        try:
            op.tile({d: slice(0, max(1, n - 1))})
        except ValueError:
            continue
        out.append(d)
    return out


@st.composite
def split_cases(draw, depth=None, nested=True):
    case = draw(fst.cases(depth=depth))
    dims = splittable(case.op)
    assume(dims)
    rng = random.Random(draw(st.integers(0, 2**16)))
    chosen = rng.sample(dims, rng.randint(1, min(2, len(dims))))
    sizes = {d: rng.randint(1, max(1, case.op.size(d))) for d in chosen}
    specs = [fl.BatchSpec(sizes, stack=draw(st.booleans()))]
    if nested and draw(st.booleans()):
        d = rng.choice(dims)
        specs.append(fl.BatchSpec({d: rng.randint(1, max(1, case.op.size(d)))}, stack=draw(st.booleans())))
    return case, sizes, specs


@given(split_cases())
def test_batched_equals_original(data):
    case, _, specs = data
    A, x = case.op, case.x
    tol = 10 * rtol_for(case.op, case.x)
    B = fl.create_batched_linop(A, specs)
    assert B.ishape == A.ishape or named(B.ishape) == named(A.ishape)
    y = A(x)
    assert rel(B(x), y) <= tol
    assert rel(B.H(y), A.H(y)) <= tol
    assert rel(B.N(x), A.N(x)) <= tol


@given(split_cases(nested=False))
def test_tiles_reassemble(data):
    case, sizes, _ = data
    A, x = case.op, case.x
    tiles, ins, outs = fl.split_linop(A, sizes)
    y = A(x)
    acc = torch.zeros_like(y)
    flat_t = optree.tree_leaves(tiles, is_leaf=lambda t: isinstance(t, fl.Linop))
    flat_i = optree.tree_leaves(ins, is_leaf=lambda t: isinstance(t, tuple) and t[:1] == (Ellipsis,))
    flat_o = optree.tree_leaves(outs, is_leaf=lambda t: isinstance(t, tuple) and t[:1] == (Ellipsis,))
    assert len(flat_t) == len(flat_i) == len(flat_o)
    for t, i, o in zip(flat_t, flat_i, flat_o):
        acc[o] += t(x[i])
    assert rel(acc, y) <= 10 * rtol_for(case.op, case.x)
    # nested tuples, one level per split dim
    level = tiles
    for d in sizes:
        n = A.size(d)
        assert isinstance(level, tuple) and len(level) == max(1, -(-n // sizes[d]))  # one empty tile for n == 0
        level = level[0]
    assert isinstance(level, fl.Linop)


@given(fst.cases(depth=3))
def test_unsplittable_dims_raise_before_building(case):
    A = case.op
    for d in sorted(fl.split._all_dims(A)):
        if A.size(d) is not None and A.split_kind(d) is None:
            with pytest.raises(ValueError, match=repr(d)):
                fl.create_batched_linop(A, fl.BatchSpec({d: 1}))
            with pytest.raises(ValueError, match=repr(d)):
                fl.split_linop(A, {d: 1})


@given(split_cases(nested=False))
@settings(max_examples=15)
def test_split_round_trips_through_meta(data):
    case, sizes, _ = data
    tiles, _, _ = fl.split_linop(case.op, sizes)
    meta = optree.tree_map(lambda t: t.to("meta"), tiles)
    assert optree.tree_structure(meta) == optree.tree_structure(tiles)
    assert all(t.device.type == "meta" for t in optree.tree_leaves(meta) if isinstance(t, torch.Tensor))


@given(fst.cases(depth=2))
@settings(max_examples=20)
def test_to_keeps_storage_sharing(case):
    A = case.op
    N = A.normal()
    before = [t for t in optree.tree_leaves(N) if isinstance(t, torch.Tensor)]
    after = [t for t in optree.tree_leaves(fl.to(N, dtype=torch.float64 if not case.dtype.is_complex else torch.complex128))
             if isinstance(t, torch.Tensor)]
    ptr = lambda t: t.untyped_storage().data_ptr()
    for i in range(len(before)):
        for j in range(len(before)):
            if before[i].is_floating_point() or before[i].is_complex():
                same = ptr(before[i]) == ptr(before[j]) and before[i].dtype == before[j].dtype
                if same:
                    assert ptr(after[i]) == ptr(after[j])
    x = case.x.to(torch.complex128 if case.dtype.is_complex else torch.float64)
    got, want = fl.to(N, dtype=x.dtype)(x), N(case.x)
    # a real input may give a complex output (an FFT or NUFFT in the tree): compare in its dtype
    assert rel(got, want.to(got.dtype)) <= 10 * rtol_for(case.op, case.x)


@pytest.mark.parametrize("dynamic", [False, True])
@given(split_cases(nested=False))
@settings(max_examples=6)  # three graphs per example (B, B.H, B.N), twice (static, dynamic shapes)
def test_batched_compiles_and_differentiates(dynamic, data):
    import torch._dynamo

    case, _, specs = data
    A, x = case.op, case.x
    B = fl.create_batched_linop(A, specs)
    tol = 10 * rtol_for(case.op, case.x)
    torch._dynamo.reset()
    # B.H and B.N are built inside the compiled function (restacked tiles)
    f = torch.compile(lambda B, x: (B(x), B.H(B(x)), B.N(x)), fullgraph=True, dynamic=dynamic, backend="eager")
    for got, want in zip(f(B, x), (A(x), A.H(A(x)), A.N(x))):
        assert rel(got, want) <= tol
    loss = lambda op: (lambda x: op(x).abs().square().sum())
    assert rel(torch.func.grad(loss(B))(x), torch.func.grad(loss(A))(x)) <= tol


def test_nested_spec_over_a_dim_some_tiles_do_not_fix():
    """Splitting S first leaves a Scalar block that acts on any size of X;
    the second spec splits X only where a tile fixes it."""
    S = fl.Stack(fl.Scalar(0.5, ("X",)), fl.Diagonal(torch.tensor([2.0, 3.0, 4.0]), ("X",)), odim="S")
    A = fl.Chain(S, fl.Scalar(-1.0, ("S", "X")))
    x = torch.tensor([1.0, 2.0, 3.0])
    for stack in (True, False):
        B = fl.create_batched_linop(A, [fl.BatchSpec({"S": 1}, stack=stack), fl.BatchSpec({"X": 2}, stack=stack)])
        torch.testing.assert_close(B(x), A(x))
        torch.testing.assert_close(B.H(A(x)), A.H(A(x)))


def test_one_spec_over_two_dims_with_blocks_that_do_not_fix_one():
    A = fl.Stack(fl.Scalar(0.2, ("X",)), fl.Diagonal(torch.tensor([1.0, 0.5]), ("X",)), odim="S")
    x = torch.tensor([1.0, -2.0])
    for stack in (True, False):
        B = fl.create_batched_linop(A, fl.BatchSpec({"S": 1, "X": 1}, stack=stack))
        torch.testing.assert_close(B(x), A(x))
        torch.testing.assert_close(B.H(A(x)), A.H(A(x)))
        torch.testing.assert_close(B.N(x), A.N(x))
