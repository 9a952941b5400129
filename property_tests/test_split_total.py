"""Splitting is total: for every drawn tree and every dim of it (input-only,
output-only, renamed, internal, or one it lacks), ``create_batched_linop``
and ``split_linop`` either rebuild the operator exactly (forward, adjoint,
normal; stacked and looped) or raise a ValueError naming the dim before
anything is built."""

import dataclasses
from unittest import mock

import optree
import torch
from hypothesis import given
from hypothesis import strategies as st

import funclinop as fl
from funclinop import split as split_module
from funclinop.testing import randn, rtol_for
from funclinop.testing import strategies as fst


def rel(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-30))


def _pinned(A, x, where, gen):
    """A with Diagonals that fix its input and/or output sizes (so that splits happen)."""
    if where in ("in", "both"):
        A = fl.Chain(fl.Diagonal(randn(gen, x.shape, x.dtype), A.ishape), A)
    if where in ("out", "both"):
        y = A(x)
        A = fl.Chain(A, fl.Diagonal(randn(gen, y.shape, y.dtype), A.oshape))
    return A


@st.composite
def total_cases(draw):
    case = draw(fst.cases())
    gen = torch.Generator().manual_seed(case.seed + 2)
    A = _pinned(case.op, case.x, draw(st.sampled_from(["none", "in", "out", "both"])), gen)
    case = dataclasses.replace(case, op=A)
    every = sorted(split_module._all_dims(A))
    chosen = draw(st.lists(st.sampled_from(every), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 9)) == 0:
        chosen.append("W")  # a dim no operator has
    sizes = {d: draw(st.integers(1, (A.size(d) or 2) + 1)) for d in chosen}
    nested = draw(st.sampled_from([None, *every]))
    return case, sizes, nested


def _specs(sizes, nested, stack, A):
    specs = [fl.BatchSpec(sizes, stack=stack)]
    if nested is not None:
        specs.append(fl.BatchSpec({nested: max(1, (A.size(nested) or 2) // 2)}, stack=stack))
    return specs


def _refused(error, dims):
    assert isinstance(error, ValueError), repr(error)
    assert any(repr(d) in str(error) for d in dims), f"the error names none of {dims}: {error}"


@given(total_cases())
def test_batched_is_exact_or_refused_before_building(data):
    case, sizes, nested = data
    A, x = case.op, case.x
    y = A(x)
    tol = 10 * rtol_for(case.op, case.x)
    for stack in (True, False):
        specs = _specs(sizes, nested, stack, A)
        with mock.patch.object(split_module, "_batched", wraps=split_module._batched) as build:
            try:
                B = fl.create_batched_linop(A, specs)
            except Exception as e:  # noqa: BLE001 - anything but a ValueError naming a dim fails
                _refused(e, list(sizes) + ([nested] if nested else []))
                assert not build.called, "refused after building had started"
                continue
        assert B.ishape == A.ishape and B.oshape == A.oshape
        assert rel(B(x), y) <= tol
        assert rel(B.H(y), A.H(y)) <= tol
        assert rel(B.N(x), A.N(x)) <= tol


@given(total_cases())
def test_split_linop_is_exact_or_refused(data):
    case, sizes, _ = data
    A, x = case.op, case.x
    try:
        tiles, ins, outs = fl.split_linop(A, sizes)
    except Exception as e:  # noqa: BLE001
        _refused(e, list(sizes))
        return
    y = A(x)
    is_linop = lambda t: isinstance(t, fl.Linop)
    is_index = lambda t: isinstance(t, tuple) and t[:1] == (Ellipsis,)
    flat_t = optree.tree_leaves(tiles, is_leaf=is_linop)
    flat_i = optree.tree_leaves(ins, is_leaf=is_index)
    flat_o = optree.tree_leaves(outs, is_leaf=is_index)
    acc = torch.zeros_like(y)
    for t, i, o in zip(flat_t, flat_i, flat_o, strict=True):
        acc[o] += t(x[i])
    assert rel(acc, y) <= 10 * rtol_for(case.op, case.x)
