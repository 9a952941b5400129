"""Properties every registered operator type and every random tree must have."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from funclinop.testing import FACTORIES, check_adjoint, check_normal, check_pytree, default_rtol, rtol_for
from funclinop.testing import strategies as fst

TYPES = sorted(FACTORIES)


def draw_leaf(data, name):
    """A random operator of the registered type ``name`` and an input."""
    f = FACTORIES[name]
    return data.draw(fst.cases(types=[name], depth=0, min_size=f.min_size, dtype_choices=f.dtypes))


def rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / max(torch.linalg.vector_norm(b), 1e-30))


@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
def test_adjoint(name, data):
    case = draw_leaf(data, name)
    check_adjoint(case.op, case.x)


@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
def test_normal(name, data):
    case = draw_leaf(data, name)
    check_normal(case.op, case.x)


@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
def test_double_adjoint_is_original(name, data):
    case = draw_leaf(data, name)
    A = case.op
    assert A.H.H == A
    assert A.H.H(case.x).shape == A(case.x).shape
    torch.testing.assert_close(A.H.H(case.x), A(case.x))


@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
def test_linearity(name, data):
    case = draw_leaf(data, name)
    A, x = case.op, case.x
    z = torch.randn_like(x)
    a = 0.7 - 0.3j if x.is_complex() else 0.7
    assert rel(A(a * x + z), a * A(x) + A(z)) <= 10 * default_rtol(x.dtype)


@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
@settings(max_examples=10)
def test_pytree_grad_vmap(name, data):
    case = draw_leaf(data, name)
    check_pytree(case.op, case.x)


@given(fst.cases(depth=3))
def test_tree_adjoint_and_normal(case):
    check_adjoint(case.op, case.x)
    check_normal(case.op, case.x)


@given(fst.cases(depth=3))
@settings(max_examples=15)
def test_tree_pytree(case):
    check_pytree(case.op, case.x)


@given(fst.cases(depth=2, batch=(3,)))
@settings(max_examples=15)
def test_vmap_over_inputs_equals_loop(case):
    A = case.op
    if A.ishape[:1] == ("...",):
        return
    ys = torch.func.vmap(A)(case.x)
    loop = torch.stack([A(x) for x in case.x])
    assert rel(ys, loop) <= rtol_for(case.op, case.x)


@given(fst.cases(depth=2, dtype_choices=(torch.float64, torch.complex128)))
@settings(max_examples=15)
def test_input_gradient_matches_autograd(case):
    """grad of |A x|² w.r.t. x is 2 AᴴA x (its real part for a real x: a tree
    may hold complex leaves that make a real input's output complex)."""
    A, x = case.op, case.x
    g = torch.func.grad(lambda x: A(x).abs().square().sum())(x)
    want = 2 * A.H(A(x))
    want = want if x.is_complex() else want.real
    tol = 100 * rtol_for(A, x)
    scale = float(want.abs().max()) if want.numel() else 1.0
    torch.testing.assert_close(g, want, rtol=tol, atol=tol * max(scale, 1.0))


def _compiled_apply(A, x, dynamic):
    import torch._dynamo

    torch._dynamo.reset()
    # backend="eager": dynamo traces the whole call (fullgraph: no graph breaks)
    # without paying for code generation on every drawn operator. A.H and A.N
    # are built inside the traced function: with dynamic=True the sizes their
    # construction handles are symbolic.
    f = torch.compile(lambda A, x: (A(x), A.H(A(x)), A.N(x)), fullgraph=True, dynamic=dynamic, backend="eager")
    return f(A, x)


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
@settings(max_examples=2)
def test_compiled_equals_eager(name, dynamic, data):
    case = draw_leaf(data, name)
    A, x = case.op, case.x
    for got, want in zip(_compiled_apply(A, x, dynamic), (A(x), A.H(A(x)), A.N(x))):
        assert rel(got, want) <= rtol_for(case.op, case.x)


@pytest.mark.parametrize("dynamic", [False, True])
@given(fst.cases(depth=3))
@settings(max_examples=8)
def test_tree_compiled_equals_eager(dynamic, case):
    A, x = case.op, case.x
    for got, want in zip(_compiled_apply(A, x, dynamic), (A(x), A.H(A(x)), A.N(x))):
        assert rel(got, want) <= rtol_for(case.op, case.x)


@pytest.mark.parametrize("name", TYPES)
@given(data=st.data())
@settings(max_examples=10)
def test_apply_adjoint_agrees_with_the_adjoint_operator(name, data):
    """The two routes to Aᴴy (the method, and the operator A.H) agree."""
    case = draw_leaf(data, name)
    A = case.op
    y = torch.randn_like(A(case.x))
    assert rel(A.apply_adjoint(y), A.H.apply(y)) <= rtol_for(case.op, case.x)
