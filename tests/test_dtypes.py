"""One dtype rule for every operator.

``A(x)``, ``A.H(y)`` and ``A.N(x)`` have the dtype torch's type promotion
gives the input and the operator's floating/complex tensor leaves, where a
0-dim leaf counts as a Python scalar: it can make a real input complex but
never changes its precision. Integer and bool leaves (indices, masks) take no
part. An FFT counts as a complex scalar (its coefficients take the input's
precision).
"""

import itertools
import random
import sys

import optree
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import funclinop as fl
from funclinop.nufft import FiNUFFT
from funclinop.testing import DTYPES, FACTORIES, NotApplicable, default_rtol, randn, random_input
from funclinop.testing import strategies as fst

F32, F64, C64, C128 = torch.float32, torch.float64, torch.complex64, torch.complex128
# operators whose output is complex whatever their leaves (the FFT and the
# finufft NUFFT: complex coefficients in the precision of input and leaves)
COMPLEX_OPS = (fl.FFT, fl.NUFFT, FiNUFFT)
DIMS = ({"P": 2, "Q": 3, "R": 4}, {"P": 3, "Q": 2}, {"P": 4}, {"P": 2, "Q": 2})


def predicted(op, dtype):
    """The rule, written out: the dtype of ``op`` applied to an input of ``dtype``."""
    real, cplx = dtype.to_real(), dtype.is_complex
    nodes = optree.tree_leaves(op, is_leaf=lambda n: isinstance(n, COMPLEX_OPS))
    cplx = cplx or any(isinstance(n, COMPLEX_OPS) for n in nodes)
    for leaf in optree.tree_leaves(op):
        if isinstance(leaf, torch.Tensor) and (leaf.is_floating_point() or leaf.is_complex()):
            cplx = cplx or leaf.is_complex()
            if leaf.ndim > 0:
                real = torch.promote_types(real, leaf.dtype.to_real())
    return real.to_complex() if cplx else real


def lowest(op, dtype):
    """The lowest precision among ``dtype`` and the operator's floating leaves."""
    precisions = [dtype.to_real()] + [
        t.dtype.to_real() for t in optree.tree_leaves(op)
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())
    ]
    return min(precisions, key=lambda d: d.itemsize)


def double(dtype):
    return C128 if dtype.is_complex else F64


def rel(a, b):
    d, n = torch.linalg.vector_norm(a - b), torch.linalg.vector_norm(b)
    return float(d / n) if n > 0 else float(d)


def build(name, dtype):
    """An operator from factory ``name`` with leaves of ``dtype``, and its input dims."""
    f = FACTORIES[name]
    for seed in range(24):
        dims = DIMS[seed % len(DIMS)]
        if len(dims) > f.max_dims or min(dims.values()) < f.min_size:
            continue
        try:
            return f.make(torch.Generator().manual_seed(seed), dtype, dict(dims), frozenset()), dims
        except NotApplicable:
            continue
    pytest.skip(f"{name}: no applicable dims")


def check_rule(A, x, y):
    """A(x), A.H(y), A.N(x) and A.apply_adjoint(y): the rule's dtype, and the
    values of the same operator and input in double precision, to the
    accuracy of the lower precision involved."""
    ref = fl.to(A, dtype=F64)
    cases = (
        ("A", A, ref, x),
        ("A.H", A.H, ref.H, y),
        ("A.N", A.N, ref.N, x),
        ("A.apply_adjoint", A.H, ref.H, y),
    )
    for what, B, R, t in cases:
        out = A.apply_adjoint(t) if what == "A.apply_adjoint" else B(t)
        want = predicted(B, t.dtype)
        assert out.dtype == want, f"{what}: {out.dtype} for input {t.dtype}, the rule gives {want}"
        expected = R(t.to(double(t.dtype)))
        err = rel(out.to(expected.dtype), expected)
        tol = default_rtol(lowest(A, t.dtype))
        assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.1g} in {out.dtype}"
    # the normal is built in the operator's own precision
    assert predicted(A.N, x.dtype).to_real() == predicted(A, x.dtype).to_real()


@pytest.mark.parametrize("xdtype", DTYPES, ids=str)
@pytest.mark.parametrize("opdtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_factory_follows_the_rule(name, opdtype, xdtype):
    if opdtype not in FACTORIES[name].dtypes:
        pytest.skip(f"{name} is not built with {opdtype}")
    A, dims = build(name, opdtype)
    gen = torch.Generator().manual_seed(1)
    x = randn(gen, tuple(dims.values()), xdtype)
    y = randn(gen, A(x).shape, xdtype)
    check_rule(A, x, y)


@pytest.mark.parametrize("xdtype", DTYPES, ids=str)
@pytest.mark.parametrize("wdtype", DTYPES, ids=str)
def test_mixed_dtype_composites(wdtype, xdtype):
    """Chains, sums and concatenations of operators of different dtypes."""
    gen = torch.Generator().manual_seed(2)
    others = {F32: F64, F64: F32, C64: F64, C128: F32}
    D = fl.Dense(randn(gen, (3, 4), wdtype), ("M", "N"), ("N",), ("M",))
    E = fl.Dense(randn(gen, (3, 4), others[wdtype]), ("M", "N"), ("N",), ("M",))
    d = fl.Diagonal(randn(gen, (3,), others[wdtype]), ("M",))
    s = fl.Scalar(randn(gen, (), C128), ("M",))
    ops = [
        fl.Chain(D, d), fl.Chain(D, s, d), D + E, 0.1 * D - E,
        fl.Concat(D, E, odim="M"), fl.Concat(D, E, idim="N"), fl.Stack(D, E, odim="S"),
        fl.Chain(fl.Convolution(randn(gen, (3,), wdtype), in_grid_shape=("N",), out_grid_shape=("N1",)),
                 fl.Identity(("N1",), ("N",)), D),
    ]
    for seed, A in enumerate(ops):
        x = random_input(A, xdtype, seed=seed)
        check_rule(A, x, random_input(A.H, xdtype, seed=seed))


# ---- the defects this rule replaces ----------------------------------------


def test_python_scale_keeps_double_precision():
    """``0.1 * A`` in float64 is accurate to float64, not float32."""
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(5, 6, dtype=F64, generator=gen)
    x = torch.randn(6, dtype=F64, generator=gen)
    want = 0.1 * (W @ x)
    for A in (0.1 * fl.Dense(W), fl.Dense(W) * 0.1, fl.Scalar(0.1) @ fl.Dense(W)):
        got = A(x)
        assert got.dtype == F64
        assert rel(got, want) < 1e-15
    assert rel((-fl.Dense(W))(x), -(W @ x)) == 0


@pytest.mark.parametrize("c", [0.1, 3, 1 / 3 + 0.7j], ids=["float", "int", "complex"])
def test_python_scalars_are_stored_in_double_precision(c):
    S = fl.Scalar(c)
    assert S.weight.ndim == 0
    assert S.weight.dtype == (C128 if isinstance(c, complex) else F64)
    assert S.weight.item() == c  # exactly the Python number
    assert (c * fl.Identity(("N",))).linops[-1].weight.dtype == S.weight.dtype


@pytest.mark.parametrize("xdtype", DTYPES, ids=str)
def test_zero_dim_leaves_never_change_precision(xdtype):
    """A float64 Scalar on float32 data stays float32; a complex one only makes it complex."""
    x = randn(torch.Generator().manual_seed(4), (3,), xdtype)
    assert fl.Scalar(torch.tensor(2.0, dtype=F64))(x).dtype == xdtype
    assert fl.Scalar(torch.tensor(2.0, dtype=F32))(x).dtype == xdtype
    assert fl.Scalar(2.0)(x).dtype == xdtype
    assert fl.Scalar(2j)(x).dtype == (xdtype if xdtype.is_complex else xdtype.to_complex())
    torch.testing.assert_close(fl.Scalar(0.5)(x), x * 0.5, rtol=0, atol=0)


@pytest.mark.parametrize("xdtype", DTYPES, ids=str)
@pytest.mark.parametrize("wdtype", DTYPES, ids=str)
def test_dense_promotes_instead_of_raising(wdtype, xdtype):
    """Every Dense plan (F.linear, matmul, einsum, multiply) promotes like Diagonal."""
    gen = torch.Generator().manual_seed(5)
    W = randn(gen, (3, 4), wdtype)
    x = randn(gen, (2, 4), xdtype)
    want = torch.promote_types(wdtype, xdtype)
    plans = [
        fl.Dense(W, ("M", "N"), ("B", "N"), ("B", "M")),  # F.linear
        fl.Dense(W.mT, ("N", "M"), ("B", "N"), ("B", "M")),  # matmul
        fl.Dense(W, ("M", "N"), ("B", "N"), ("M", "B")),  # einsum
        fl.Dense(randn(gen, (2, 4), wdtype), ("B", "N"), ("B", "N"), ("B",)),  # multiply and sum
    ]
    assert {A._plan[0] for A in plans} == {"linear", "matmul", "einsum", "mul"}
    D = fl.Diagonal(randn(gen, (4,), wdtype), ("B", "N"))
    assert D(x).dtype == want
    for A in plans:
        assert A(x).dtype == want
        Wd, xd = A.weight.to(double(want)), x.to(double(want))
        expected = torch.einsum(fl.ops.dense._equation(A._ilabels, A.weightshape, A._olabels), xd, Wd)
        assert rel(A(x).to(expected.dtype), expected) <= default_rtol(want)


def test_real_operators_on_complex_data():
    """Real weights (a mask, a real Dense, a real kernel) act on complex data."""
    gen = torch.Generator().manual_seed(6)
    x = randn(gen, (4, 5), C64)
    mask = (torch.rand(4, 5, generator=gen) > 0.5).to(F32)
    W = torch.randn(3, 5, generator=gen)
    k = torch.randn(3, generator=gen)
    A = fl.Chain(fl.Diagonal(mask, ("B", "N")), fl.Dense(W, ("M", "N"), ("B", "N"), ("B", "M")))
    torch.testing.assert_close(A(x), (x * mask) @ W.mT.to(C64))
    C = fl.Convolution(k, ("B",), ("N",), ("N1",))
    want = torch.complex(C(x.real), C(x.imag))
    torch.testing.assert_close(C(x), want)


@pytest.mark.parametrize("xdtype", [F32, F64], ids=str)
def test_fft_of_real_input_is_complex_of_the_same_precision(xdtype):
    F = fl.FFT(1)
    x = torch.randn(6, dtype=xdtype)
    assert F(x).dtype == F.H(x).dtype == xdtype.to_complex()
    assert F.N(x).dtype == xdtype


def test_normals_keep_the_operators_precision():
    """Closed-form normals are built in the operator's own dtype."""
    W = torch.randn(3, 4, dtype=C64)
    assert fl.Dense(W).N.weight.dtype == C64
    assert fl.Diagonal(W, ("M", "N")).N.weight.dtype == F32
    assert fl.Scalar(2j).N.weight.dtype == F64
    # integer counts: no float leaf appears that the operator did not have
    for A in (fl.ArrayToBlocks((5,), (3,), (2,)), fl.Sampling((torch.tensor([0, 2, 2]),), (4,)),
              fl.Crop((2,), (5,))):
        leaves = [t for t in fl.linop.optree.tree_leaves(A.N) if isinstance(t, torch.Tensor)]
        assert not any(t.is_floating_point() or t.is_complex() for t in leaves)
        assert A.N(random_input(A, F32)).dtype == F32


@pytest.mark.parametrize("xdtype", DTYPES, ids=str)
@pytest.mark.parametrize("wdtype", DTYPES, ids=str)
def test_vjp_adjoint_follows_the_rule(wdtype, xdtype):
    """The default adjoint (a vjp) linearises at the promoted dtype, not the input's."""
    w = randn(torch.Generator().manual_seed(7), (4,), wdtype)
    A = fl.FunctionLinop(lambda w, x: x * w, w, ishape=("N",), oshape=("N",), sizes={"N": 4})
    y = randn(torch.Generator().manual_seed(8), (4,), xdtype)
    got = A.H(y)
    assert got.dtype == torch.promote_types(wdtype, xdtype)
    expected = y.to(double(xdtype)) * w.to(double(wdtype)).conj()
    assert rel(got.to(expected.dtype), expected) <= default_rtol(got.dtype)


@pytest.mark.parametrize("wdtype,xdtype", list(itertools.product(DTYPES, DTYPES)), ids=str)
def test_split_operators_follow_the_rule(wdtype, xdtype):
    """Stacked tiles (vmap over the tiles) promote as the operator they split."""
    gen = torch.Generator().manual_seed(9)
    A = fl.Chain(fl.Dense(randn(gen, (4, 3, 5), wdtype), ("B", "M", "N"), ("B", "N"), ("B", "M")),
                 fl.Scalar(randn(gen, (), wdtype), ("B", "M")))
    x = randn(gen, (4, 5), xdtype)
    B = fl.create_batched_linop(A, [fl.BatchSpec({"B": 2})])
    assert B(x).dtype == A(x).dtype == predicted(A, xdtype)
    torch.testing.assert_close(B(x), A(x))


# ---- random trees with leaves of mixed precision ------------------------------


def _recast(op, rng):
    """``op`` with each floating leaf cast to a random precision (keeping real/complex)."""

    def cast(t):
        if not isinstance(t, torch.Tensor) or not (t.is_floating_point() or t.is_complex()):
            return t
        return t.to(rng.choice((C64, C128) if t.is_complex() else (F32, F64)))

    return optree.tree_map(cast, op)


@given(case=fst.cases(), xdtype=fst.dtypes(), seed=st.integers(0, 2**16))
@settings(max_examples=60)
def test_random_trees_of_mixed_precision_follow_the_rule(case, xdtype, seed):
    A = _recast(case.op, random.Random(seed))
    gen = torch.Generator().manual_seed(seed)
    x = randn(gen, case.x.shape, xdtype)
    check_rule(A, x, randn(gen, A(x).shape, xdtype))


def test_a_kernel_that_cannot_promote_keeps_its_error_and_names_the_operator():
    """A user's kernel that needs equal dtypes fails with torch's own error
    (not reinterpreted from its text), noted with the operator and the input dtype."""
    W = torch.randn(3, 4)
    A = fl.FunctionLinop(lambda W, x: torch.mm(W, x[:, None])[:, 0], W, ishape=("N",), oshape=("M",))
    with pytest.raises(RuntimeError) as info:
        A(torch.randn(4, dtype=F64))
    if sys.version_info >= (3, 11):
        assert any("FunctionLinop((N) -> (M))" in n and "float64" in n for n in info.value.__notes__)


def test_helpers_read_an_operators_dtype_by_the_rule():
    """A Python scalar (a float64 0-dim leaf) does not turn a float32 operator's
    random input, default tolerance or power-method start vector into float64."""
    from funclinop.alg import power_method
    from funclinop.testing import check_adjoint, check_normal

    W = torch.randn(4, 4, generator=torch.Generator().manual_seed(10))
    A = fl.Dense(W @ W.mT)
    for B in (0.5 * A, A * 0.5, -A, fl.Scalar(3.0) @ A):
        assert random_input(B).dtype == F32
        check_adjoint(B)
        check_normal(B)
        assert power_method(B, max_iter=5)[1].dtype == F32
    assert random_input(A * 2j).dtype == C64
    assert power_method(A * 2j, max_iter=5)[1].dtype == C64
    # mixed precision: the input takes the lowest, the tolerance follows it
    M = fl.Chain(A, fl.Dense(torch.randn(3, 4, dtype=F64), ("K", "M"), ("M",), ("K",)))
    assert random_input(M).dtype == F32
    check_adjoint(M, torch.randn(4, dtype=F64))
