"""``dataclasses.replace``, the functional update, on every operator.

``replace(op, **changes)`` builds a new operator through the constructor from
``op``'s fields, so it validates the changes and recomputes everything derived
from them. Checked on every node of every registered operator (and of its
adjoint and normal), of random trees and of batched operators.
"""

import dataclasses

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import funclinop as fl
from funclinop.dims import ELLIPSIS
from funclinop.linop import Linop
from funclinop.testing import FACTORIES, default_rtol, refresh_leaves
from funclinop.testing import strategies as fst

TYPES = sorted(FACTORIES)

# Constructor arguments that accept any value (FunctionLinop's params are the
# user's own pytree): no invalid value to try.
ANY_VALUE = {(fl.FunctionLinop, "params")}


def nodes(tree):
    """Every operator in ``tree``, outermost first.

    Not the inside of stacked tiles: their leaves carry the tile axis, so
    they are the leaves of ``count`` operators, not an operator.
    """
    if isinstance(tree, tuple):
        return [op for t in tree for op in nodes(t)]
    if not isinstance(tree, Linop):
        return []
    if isinstance(tree, fl.VmapTiles):
        return [tree]
    return [tree] + [op for name in tree._children for op in nodes(getattr(tree, name))]


def argument_children(op):
    """The fields of ``op`` that are constructor arguments and pytree children."""
    return [f.name for f in dataclasses.fields(op) if f.init and f.name in op._children]


def argument_statics(op):
    """The fields of ``op`` that are constructor arguments and static."""
    return [f.name for f in dataclasses.fields(op) if f.init and f.name in op._statics]


def rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-30))


def check_replace(tree, seed):
    for op in nodes(tree):
        assert dataclasses.replace(op) == op
        for n in argument_statics(op):  # a bad value: a tensor where the treedef holds names and options
            with pytest.raises(TypeError, match=rf"{type(op).__name__}: static field {n!r}"):
                dataclasses.replace(op, **{n: torch.zeros(2)})
        names = argument_children(op)
        if not names:
            continue
        # new leaves of the same shapes: the operator holding them, all else equal
        gen = torch.Generator().manual_seed(seed)
        changes = {n: refresh_leaves(gen, getattr(op, n)) for n in names}
        assert dataclasses.replace(op, **changes) == refresh_leaves(torch.Generator().manual_seed(seed), op)
        for n in names:
            if (type(op), n) not in ANY_VALUE:
                with pytest.raises((TypeError, ValueError)):
                    dataclasses.replace(op, **{n: "not an operand"})


@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
@settings(max_examples=10)
def test_replace_every_type(name, data):
    f = FACTORIES[name]
    case = data.draw(fst.cases(types=[name], depth=0, min_size=f.min_size, dtype_choices=f.dtypes))
    A = case.op
    for op in (A, A.H, A.N):
        check_replace(op, case.seed)


@given(fst.cases(depth=3))
@settings(max_examples=25)
def test_replace_random_trees(case):
    check_replace(case.op, case.seed)


def _first_splittable(op):
    for d in sorted(op.dims):
        n = op.size(d)
        if n is not None and n >= 2 and op.split_kind(d) is not None:
            try:
                op.tile({d: slice(0, 1)})
            except ValueError:
                continue
            return d
    return None


@given(fst.cases(depth=2), st.booleans())
@settings(max_examples=15)
def test_replace_batched(case, stack):
    """Batched operators (stacked tiles, device moves) update the same way."""
    d = _first_splittable(case.op)
    assume(d is not None)
    B = fl.create_batched_linop(case.op, fl.BatchSpec({d: 1}, stack=stack))
    check_replace(B, case.seed)
    check_replace(fl.ToDevice("cpu", "meta", B.ishape), case.seed)


# ---- renaming dims -------------------------------------------------------------------
# A renamed operator acts on the same numbers; everything derived from the
# names (Dense's einsum labels and contraction plan) follows the new names.

NAME_FIELDS = {
    fl.Dense: ("weightshape", "ishape", "oshape", "broadcast_dims"),
    fl.Diagonal: ("ioshape", "broadcast_dims"),
}
# The folded normal of a Dense is built with einsum labels of its own (its
# weight has dims N and N1 for the input dim N): renaming its weight dims
# renames those labels too.
LABEL_FIELDS = ("ilabels", "olabels")


def _renamed(shape):
    return None if shape is None else tuple(d if d == ELLIPSIS else d + "r" for d in shape)


@pytest.mark.parametrize("name", ["Dense", "Dense.expand", "Diagonal"])
@given(data=st.data())
@settings(max_examples=20)
def test_replace_renames_dims(name, data):
    case = data.draw(fst.cases(types=[name], depth=0))
    A = case.op
    for op, x, labelled in ((A, case.x, False), (A.H, A(case.x), False), (A.N, case.x, True)):
        fields = NAME_FIELDS[type(op)] + (LABEL_FIELDS if labelled and type(op) is fl.Dense else ())
        R = dataclasses.replace(op, **{f: _renamed(getattr(op, f)) for f in fields})
        assert R.ishape == _renamed(op.ishape) and R.oshape == _renamed(op.oshape)
        assert {d + "r": n for d, n in op.dim_sizes().items()} == R.dim_sizes()
        tol = default_rtol(case.dtype)
        assert rel(R(x), op(x)) <= tol
        assert rel(R.H(op(x)), op.H(op(x))) <= tol
        assert rel(R.N(x), op.N(x)) <= tol
        assert R.split_kind(op.ishape[-1] + "r") == op.split_kind(op.ishape[-1])
        # renaming the input dims only leaves the weight with dims nobody names
        if type(op) is fl.Dense and not labelled:
            with pytest.raises(fl.ShapeError):
                dataclasses.replace(op, ishape=_renamed(op.ishape))


# ---- examples ------------------------------------------------------------------------


def test_replace_composites_keep_positional_construction():
    D = fl.Diagonal(torch.tensor([1.0, 2.0]), ("N",))
    S = fl.Scalar(3.0, ("N",))
    for cls in (fl.Chain, fl.Add):
        assert cls(D, S) == cls(linops=(D, S)) == dataclasses.replace(cls(D, D), linops=(D, S))
        with pytest.raises(TypeError, match="not both"):
            cls(D, linops=(S,))
        with pytest.raises(ValueError, match="at least one"):
            dataclasses.replace(cls(D, S), linops=())
    R = fl.Dense(torch.ones(2, 2), ("M", "N"), ("N",), ("M",))
    Q = fl.Dense(torch.zeros(1, 2), ("M", "N"), ("N",), ("M",))
    assert fl.Concat(R, R, odim="M") == dataclasses.replace(fl.Concat(R, Q, odim="M", block_sizes=(2, 1)),
                                                            linops=(R, R), block_sizes=None)
    assert fl.Stack(D, S, odim="S") == fl.Stack(linops=(D, S), odim="S")


def test_replace_revalidates_composites():
    D = fl.Dense(torch.randn(3, 2), ("M", "N"), ("N",), ("M",))
    E = fl.Diagonal(torch.randn(3), ("M",))
    A = fl.Chain(D, E)
    with pytest.raises(fl.ShapeError, match="Chain"):
        dataclasses.replace(A, linops=(E, D))
    with pytest.raises(fl.ShapeError, match="Add"):
        dataclasses.replace(fl.Add(E, E), linops=(E, fl.Diagonal(torch.randn(3), ("K",))))
    with pytest.raises(fl.ShapeError, match="Concat"):
        dataclasses.replace(fl.Concat(D, D, odim="M"), odim="N")
    with pytest.raises(fl.ShapeError, match="already in"):
        dataclasses.replace(fl.Stack(E, E, odim="S"), odim="M")
    with pytest.raises(TypeError):
        dataclasses.replace(A, linops=D)  # one operator is not a tuple of them


def test_replace_stack_keeps_the_position_of_its_new_dim():
    E = fl.Diagonal(torch.randn(2, 3), ("X", "Y"))
    A = fl.Stack(E, 2 * E, odim=("S", -1))
    assert A.odim == ("S", -1) and A.oshape == ("X", "Y", "S")
    for op in (A, A.H, A.N):
        assert dataclasses.replace(op) == op
    assert dataclasses.replace(A, odim=("T", 1)).oshape == ("X", "T", "Y")
    assert A.H.H == A


def test_replace_dense_labels_follow_the_names():
    W = torch.randn(3, 4, dtype=torch.complex128)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    B = dataclasses.replace(A, weightshape=("K", "L"), ishape=("L",), oshape=("K",))
    x = torch.randn(4, dtype=torch.complex128)
    torch.testing.assert_close(B(x), W @ x)
    torch.testing.assert_close(B.N(x), W.conj().T @ (W @ x))
    assert B.ilabels is None and B == fl.Dense(W, ("K", "L"), ("L",), ("K",))


def test_replace_with_none_resolves_a_default_again():
    P = fl.Pad((5,), (2,))
    assert P.out_shape == ("Nx1",)
    assert dataclasses.replace(P, in_shape=("A",)).oshape == ("...", "Nx1")  # as resolved
    assert dataclasses.replace(P, in_shape=("A",), out_shape=None).oshape == ("...", "A1")
    D = fl.Dense(torch.randn(3, 7))
    W = torch.randn(2, 3, 7)
    with pytest.raises(fl.ShapeError, match="weightshape"):
        dataclasses.replace(D, weight=W)
    E = dataclasses.replace(D, weight=W, weightshape=None, ishape=None, oshape=None)
    assert E == fl.Dense(W)
