"""Example-based tests of the core: dims, operators, algebra, transforms, errors."""

import dataclasses

import optree
import pytest
import torch

import funclinop as fl
from funclinop.testing import check_adjoint, check_normal, check_pytree


def dense_matrix(A, n_in, dtype):
    """A's matrix, built column by column from unit vectors."""
    cols = []
    for k in range(n_in):
        e = torch.zeros(n_in, dtype=dtype)
        e[k] = 1
        cols.append(A(e).reshape(-1))
    return torch.stack(cols, dim=1)


# ---- dims -----------------------------------------------------------------------
def test_dim_parsing():
    assert fl.Dim("NxNy") == ("Nx", "Ny")
    assert fl.Dim("NxNyNz") == ("Nx", "Ny", "Nz")
    assert fl.Dim("...CNxNy") == ("...", "C", "Nx", "Ny")
    assert fl.Dim("A1B2") == ("A1", "B2")
    assert fl.Dim("") == ()
    with pytest.raises(ValueError):
        fl.Dim("1A")


def test_fresh_names_are_deterministic():
    from funclinop.dims import fresh

    assert fresh("N", ()) == "N"
    assert fresh("N", ("N",)) == "N1"
    assert fresh("N", ("N", "N1")) == "N2"
    assert fresh("Kx1", ("Kx1",)) == "Kx2"


# ---- operators against dense references ----------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_dense_matches_matrix(dtype):
    W = torch.randn(3, 7, dtype=dtype)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    torch.testing.assert_close(dense_matrix(A, 7, dtype), W)
    torch.testing.assert_close(dense_matrix(A.H, 3, dtype), W.conj().T)
    torch.testing.assert_close(dense_matrix(A.N, 7, dtype), W.conj().T @ W)
    assert isinstance(A.N, fl.Dense) and A.N.ishape == A.N.oshape == ("N",)


def test_dense_inferred_shapes_batch():
    W = torch.randn(2, 5, 3, dtype=torch.float64)
    A = fl.Dense(W)
    x = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(A(x), torch.einsum("bmn,bn->bm", W, x))
    x4 = torch.randn(4, 2, 3, dtype=torch.float64)  # leading batch dims via '...'
    torch.testing.assert_close(A(x4), torch.einsum("bmn,kbn->kbm", W, x4))
    check_adjoint(A, x4)
    check_normal(A, x4)


def test_dense_general_einsum_and_plans():
    W = torch.randn(4, 3, 5, dtype=torch.complex128)  # (C, A, B)
    A = fl.Dense(W, ("C", "A", "B"), ("X", "C", "A"), ("B", "X", "C"))
    x = torch.randn(6, 4, 3, dtype=torch.complex128)
    torch.testing.assert_close(A(x), torch.einsum("cab,xca->bxc", W, x))
    check_adjoint(A, x)
    check_normal(A, x)
    # elementwise (SENSE) form and its reduction adjoint
    maps = torch.randn(4, 8, 8, dtype=torch.complex128)
    S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
    assert S._plan[0] == "mul" and S.H._plan[0] == "mul"
    img = torch.randn(8, 8, dtype=torch.complex128)
    torch.testing.assert_close(S(img), maps * img)
    torch.testing.assert_close(S.H(maps), (maps.conj() * maps).sum(0))
    torch.testing.assert_close(S.N(img), (maps.abs() ** 2).sum(0) * img)


def test_diagonal_scalar_identity_zero():
    w = torch.randn(4, 5, dtype=torch.complex128)
    D = fl.Diagonal(w, ("...", "X", "Y"))
    x = torch.randn(3, 4, 5, dtype=torch.complex128)
    torch.testing.assert_close(D(x), x * w)
    torch.testing.assert_close(D.H(x), x * w.conj())
    assert isinstance(D.N, fl.Diagonal)
    torch.testing.assert_close(D.N.weight, w.abs() ** 2)
    c = fl.Scalar(2.0 - 1j, ("X", "Y"))
    torch.testing.assert_close(c.H(x[0]), (2.0 + 1j) * x[0])
    torch.testing.assert_close(fl.Identity()(x), x)
    torch.testing.assert_close(fl.Zero()(x), torch.zeros_like(x))


def test_function_linop_vjp_adjoint():
    W = torch.randn(3, 4, dtype=torch.complex128)
    A = fl.FunctionLinop(lambda p, x: p @ x, W, ishape=("N",), oshape=("M",), sizes={"N": 4})
    torch.testing.assert_close(dense_matrix(A.H, 3, torch.complex128), W.conj().T)
    check_adjoint(A, torch.randn(4, dtype=torch.complex128))
    with pytest.raises(fl.ShapeError, match="'N'"):
        fl.FunctionLinop(lambda p, x: p @ x, W, ishape=("N",), oshape=("M",)).H(torch.ones(3))


# ---- algebra --------------------------------------------------------------------
def test_algebra_sugar():
    W1, W2 = torch.randn(3, 7, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    V = torch.randn(2, 3, dtype=torch.float64)
    A = fl.Dense(W1, ("M", "N"), ("N",), ("M",))
    B = fl.Dense(W2, ("M", "N"), ("N",), ("M",))
    C = fl.Dense(V, ("K", "M"), ("M",), ("K",))
    x = torch.randn(7, dtype=torch.float64)
    torch.testing.assert_close((C @ A)(x), V @ W1 @ x)
    assert isinstance(C @ A, fl.Chain) and (C @ A).linops == (A, C)
    torch.testing.assert_close((A @ x), W1 @ x)
    torch.testing.assert_close((A + B)(x), (W1 + W2) @ x)
    torch.testing.assert_close((A - B)(x), (W1 - W2) @ x)
    torch.testing.assert_close((-A)(x), -W1 @ x)
    torch.testing.assert_close((2.5 * A)(x), 2.5 * W1 @ x)
    torch.testing.assert_close((A * 2.5)(x), 2.5 * W1 @ x)
    torch.testing.assert_close(fl.apply(A, x), A(x))
    torch.testing.assert_close(fl.adjoint(A)(W1 @ x), A.H(W1 @ x))
    torch.testing.assert_close(fl.normal(A)(x), A.N(x))


def test_double_adjoint_and_immutability():
    A = fl.Dense(torch.randn(3, 7, dtype=torch.complex64))
    assert A.H.H == A
    with pytest.raises(dataclasses.FrozenInstanceError):
        A.weight = torch.zeros(3, 7)
    B = dataclasses.replace(A, weight=2 * A.weight)
    assert not (B == A)
    x = torch.randn(7, dtype=torch.complex64)
    torch.testing.assert_close(B(x), 2 * A(x))


def test_chain_normal_folds_through_closed_forms():
    maps = torch.randn(4, 8, 8, dtype=torch.complex128)
    w = torch.randn(8, 8, dtype=torch.float64)
    A = fl.Chain(fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy")), fl.Diagonal(w, ("...", "Nx", "Ny")))
    N = A.N
    assert isinstance(N, fl.Chain) and any(isinstance(op, fl.Diagonal) for op in N.linops)
    check_normal(A, torch.randn(8, 8, dtype=torch.complex128))


# ---- pytree and transforms ------------------------------------------------------------------
def test_pytree_registration_optree_and_torch():
    import torch.utils._pytree as tp

    A = fl.Chain(fl.Dense(torch.randn(3, 7)), fl.Diagonal(torch.randn(3), ("...", "M")))
    assert len(optree.tree_leaves(A)) == 2
    assert len(tp.tree_leaves(A)) == 2
    B = optree.tree_map(lambda t: t * 2, A)
    assert isinstance(B, fl.Chain)
    check_pytree(A, torch.randn(7))


def test_grad_wrt_operator_is_an_operator():
    W = torch.randn(3, 7, dtype=torch.float64)
    x = torch.randn(7, dtype=torch.float64)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    g = torch.func.grad(lambda A: A(x).square().sum())(A)
    assert isinstance(g, fl.Dense) and g.ishape == A.ishape
    torch.testing.assert_close(g.weight, 2 * torch.outer(W @ x, x))


def test_jvp_vjp_jacrev():
    W = torch.randn(3, 7, dtype=torch.float64)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    x, v = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    _, tangent = torch.func.jvp(A, (x,), (v,))
    torch.testing.assert_close(tangent, W @ v)
    _, pullback = torch.func.vjp(A, x)
    u = torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(pullback(u)[0], W.T @ u)
    torch.testing.assert_close(torch.func.jacrev(A)(x), W)


def test_vmap_over_inputs_and_operator_stack():
    A = fl.Dense(torch.randn(3, 7), ("M", "N"), ("N",), ("M",))
    xs = torch.randn(5, 7)
    torch.testing.assert_close(torch.func.vmap(A)(xs), torch.stack([A(x) for x in xs]))
    ops = [fl.Dense(torch.randn(3, 7), ("M", "N"), ("N",), ("M",)) for _ in range(4)]
    stacked = optree.tree_map(lambda *ts: torch.stack(ts), *ops)
    ys = torch.func.vmap(lambda A, x: A(x), in_dims=(0, None))(stacked, xs[0])
    torch.testing.assert_close(ys, torch.stack([op(xs[0]) for op in ops]))


@pytest.mark.parametrize("dynamic", [False, True])
def test_compile_fullgraph_no_graph_breaks(dynamic):
    import torch._dynamo

    D = [fl.Diagonal(torch.randn(8, 8, dtype=torch.complex64), ("...", "Nx", "Ny")) for _ in range(2)]
    A = fl.Chain(fl.Dense(torch.randn(4, 8, 8, dtype=torch.complex64), fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy")), *D)
    x = torch.randn(8, 8, dtype=torch.complex64)
    f = lambda A, x: A(x)
    explain = torch._dynamo.explain(f)(A, x)
    assert explain.graph_break_count == 0
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, dynamic=dynamic, backend="eager")
    torch.testing.assert_close(compiled(A, x), A(x))
    torch.testing.assert_close(compiled(A.H, A(x)), A.H(A(x)))


# ---- bad input ----------------------------------------------------------------------
def test_bad_input_shapes_and_sizes():
    A = fl.Dense(torch.randn(3, 7), ("M", "N"), ("N",), ("M",))
    with pytest.raises(fl.ShapeError, match=r"Dense.*'N'.*5.*7"):
        A(torch.randn(5))
    with pytest.raises(fl.ShapeError, match="dims"):
        A(torch.randn(2, 7))
    with pytest.raises(TypeError, match="Dense"):
        A @ "x"
    with pytest.raises(TypeError, match="torch.Tensor"):
        A([1.0] * 7)


def test_bad_composition_and_weights():
    A = fl.Dense(torch.randn(3, 7), ("M", "N"), ("N",), ("M",))
    B = fl.Dense(torch.randn(2, 4), ("K", "M"), ("M",), ("K",))
    with pytest.raises(fl.ShapeError, match=r"'M'.*3.*4|'M'.*4.*3"):
        fl.Chain(A, B)
    with pytest.raises(fl.ShapeError, match="does not match"):
        fl.Chain(A, fl.Diagonal(torch.randn(3), ("P",)))
    with pytest.raises(fl.ShapeError, match="does not match"):
        A + fl.Dense(torch.randn(3, 7), ("P", "N"), ("N",), ("P",))
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        fl.Dense([[1.0, 2.0]], ("M", "N"), ("N",), ("M",))
    with pytest.raises(ValueError, match="broadcast dim 'Q'"):
        fl.Diagonal(torch.randn(3), ("M",), broadcast_dims=("Q",))
    with pytest.raises(ValueError, match="broadcast dim 'Q'"):
        fl.Dense(torch.randn(3, 7), ("M", "N"), ("N",), ("M",), broadcast_dims=("Q",))
    with pytest.raises(fl.ShapeError, match="weightshape"):
        fl.Dense(torch.randn(3, 7, 2), ("M", "N"), ("N",), ("M",))
    with pytest.raises(TypeError):
        fl.Chain(A, "B")


# ---- differential tests against torchlinops ------------------------------------------------
def test_differential_core_against_torchlinops():
    tl = pytest.importorskip("torchlinops")
    g = torch.Generator().manual_seed(0)
    W = torch.randn(4, 3, 5, dtype=torch.complex64, generator=g)
    x = torch.randn(6, 4, 5, dtype=torch.complex64, generator=g)
    ours = fl.Dense(W, ("C", "M", "N"), ("X", "C", "N"), ("X", "C", "M"))
    ref = tl.Dense(W, ("C", "M", "N"), ("X", "C", "N"), ("X", "C", "M"))
    torch.testing.assert_close(ours(x), ref(x))
    y = ref(x)
    torch.testing.assert_close(ours.H(y), ref.H(y))
    torch.testing.assert_close(ours.N(x), ref.N(x))
    w = torch.randn(4, 5, dtype=torch.complex64, generator=g)
    d_ours, d_ref = fl.Diagonal(w, ("X", "C", "N")), tl.Diagonal(w, ("X", "C", "N"))
    torch.testing.assert_close(d_ours(x), d_ref(x))
    torch.testing.assert_close(d_ours.N(x), d_ref.N(x))
    c_ours = fl.Chain(d_ours, ours, 2.0 * fl.Identity(("X", "C", "M")))
    c_ref = tl.Chain(d_ref, ref, tl.Scalar(2.0, ("X", "C", "M")))
    torch.testing.assert_close(c_ours(x), c_ref(x))
    torch.testing.assert_close(c_ours.H(c_ref(x)), c_ref.H(c_ref(x)))
    a_ours = fl.Add(ours, ours)
    a_ref = tl.Add(ref, tl.Dense(W, ("C", "M", "N"), ("X", "C", "N"), ("X", "C", "M")))
    torch.testing.assert_close(a_ours(x), a_ref(x))
    W2 = torch.randn(5, 3, dtype=torch.float64, generator=g)
    x2 = torch.randn(3, dtype=torch.float64, generator=g)
    torch.testing.assert_close(fl.Dense(W2)(x2), tl.Dense(W2)(x2))


# ---- testing helpers ------------------------------------------------------------------
def test_checks_draw_inputs_and_catch_a_wrong_adjoint():
    A = fl.Dense(torch.randn(3, 7, dtype=torch.complex128), ("M", "N"), ("N",), ("M",))
    assert check_adjoint(A) < 1e-12 and check_normal(A) < 1e-12 and check_pytree(A)
    wrong = fl.FunctionLinop(lambda p, x: 2 * x, None, adjoint_fn=lambda p, y: 3 * y,
                             ishape=("N",), oshape=("N",), sizes={"N": 4})
    with pytest.raises(AssertionError, match="relative error"):
        check_adjoint(wrong)
    with pytest.raises(AssertionError, match="normal differs"):
        check_normal(_WrongNormal(torch.tensor([1.0, 2.0], dtype=torch.float64), ("N",)))
    with pytest.raises(ValueError, match="'X'"):
        check_adjoint(fl.Identity(("X",)))


class _WrongNormal(fl.Diagonal):
    """A Diagonal whose closed-form normal forgets the square."""

    def normal(self):
        return fl.Diagonal(self.weight, self.ioshape)


def test_dense_from_einstr():
    W = torch.randn(2, 3, 7, dtype=torch.float64)
    A = fl.Dense.from_einstr(W, "BMN,BN->BM")
    assert (A.weightshape, A.ishape, A.oshape) == (("B", "M", "N"), ("B", "N"), ("B", "M"))
    x = torch.randn(2, 7, dtype=torch.float64)
    torch.testing.assert_close(A(x), torch.einsum("bmn,bn->bm", W, x))
    with pytest.raises(ValueError, match="weightshape,ishape->oshape"):
        fl.Dense.from_einstr(W, "BMN->BM")


def test_extra_leading_dims_without_ellipsis_hint_at_it():
    D = fl.Diagonal(torch.ones(3, 4), ("Nx", "Ny"))
    with pytest.raises(fl.ShapeError, match=r"expected 2 for ishape \(Nx, Ny\); to accept leading batch dims write \(\.\.\., Nx, Ny\)"):
        D(torch.ones(2, 3, 4))
    with pytest.raises(fl.ShapeError) as info:
        D(torch.ones(4))
    assert "to accept leading" not in str(info.value)
