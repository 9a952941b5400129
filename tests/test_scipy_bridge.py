"""fl.to_scipy / fl.from_scipy: shapes, dtypes, adjoints, scipy's solvers, autograd through numpy."""

import numpy as np
import pytest
import torch
from torch.func import grad, vmap

import funclinop as fl
from funclinop.errors import ShapeError
from funclinop.testing import check_adjoint
from funclinop.testing.registry import FACTORIES, NotApplicable

sp = pytest.importorskip("scipy.sparse")
sla = pytest.importorskip("scipy.sparse.linalg")

DIMS = {"Nx": 3, "Ny": 4}


def matrix(A, dtype):
    """A's matrix on flattened (C order) input and output, by applying it to a basis."""
    n = int(np.prod(list(DIMS.values())))
    basis = torch.eye(n, dtype=dtype).reshape((n,) + tuple(DIMS.values()))
    return vmap(A)(basis).reshape(n, -1).T


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_to_scipy_over_the_catalogue(name):
    factory = FACTORIES[name]
    dtype = torch.complex128 if torch.complex128 in factory.dtypes else torch.float64
    gen = torch.Generator().manual_seed(0)
    try:
        A = factory.make(gen, dtype, DIMS, set())
    except NotApplicable:
        pytest.skip(f"{name} does not apply to {DIMS}")
    L = fl.to_scipy(A, sizes=DIMS)
    Am = matrix(A, dtype).numpy()
    assert L.shape == Am.shape
    has_complex = any(isinstance(t, torch.Tensor) and t.is_complex() for t in torch.utils._pytree.tree_leaves(A))
    assert L.dtype.kind == "c" or not has_complex
    assert L.matvec(np.zeros(L.shape[1], dtype=L.dtype)).dtype == L.dtype
    rng = np.random.default_rng(0)
    v = rng.standard_normal(L.shape[1]) + (1j * rng.standard_normal(L.shape[1]) if dtype.is_complex else 0)
    u = rng.standard_normal(L.shape[0]) + (1j * rng.standard_normal(L.shape[0]) if dtype.is_complex else 0)
    np.testing.assert_allclose(L.matvec(v), Am @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(L.rmatvec(u), Am.conj().T @ u, rtol=1e-12, atol=1e-12)
    V = np.stack([v, 2 * v], axis=1)
    np.testing.assert_allclose(L.matmat(V), Am @ V, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(L.H.matmat(np.stack([u, u], 1)), Am.conj().T @ np.stack([u, u], 1), rtol=1e-12,
                               atol=1e-12)


def test_scipy_solvers_and_eigensolvers_on_operators():
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(12, 7, dtype=torch.float64, generator=gen)
    E = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    L = fl.to_scipy(E)
    s = sla.svds(L, k=1, return_singular_vectors=False)[0]
    assert abs(s - float(torch.linalg.matrix_norm(W, 2))) < 1e-10
    assert abs(s - float(fl.alg.opnorm(E, tol=1e-12, max_iter=500))) < 1e-8
    top = sla.eigsh(fl.to_scipy(E.N), k=2, return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(top), torch.linalg.eigvalsh(W.T @ W)[-2:].numpy(), rtol=1e-10)
    y = torch.randn(12, dtype=torch.float64, generator=gen)
    x = sla.lsmr(L, y.numpy(), atol=1e-14, btol=1e-14)[0]
    np.testing.assert_allclose(x, torch.linalg.lstsq(W, y).solution.numpy(), rtol=1e-9)
    S = fl.Dense(torch.randn(7, 7, dtype=torch.float64, generator=gen) + 7 * torch.eye(7, dtype=torch.float64),
                 ("M", "N"), ("N",), ("M",))
    x, flag = sla.gmres(fl.to_scipy(S), np.ones(7), rtol=1e-12)
    assert flag == 0
    np.testing.assert_allclose(x, torch.linalg.solve(S.weight, torch.ones(7, dtype=torch.float64)).numpy(), rtol=1e-9)


def test_to_scipy_dtype_follows_the_operator():
    F = fl.FFT(2, centered=True)  # no tensors; maps real to complex
    L = fl.to_scipy(F, sizes={"Nx": 4, "Ny": 4})
    assert L.dtype == np.complex128 and L.shape == (16, 16)  # float64 in, complex out
    D = fl.Diagonal(torch.ones(3, dtype=torch.float32), ("N",))
    assert fl.to_scipy(D).dtype == np.float32
    assert fl.to_scipy(D, dtype=torch.complex128).matvec(np.ones(3)).dtype == np.complex128


def test_from_scipy_applies_and_adjoints():
    rng = np.random.default_rng(2)
    M = sp.random(6, 12, density=0.5, random_state=3, format="csr") + 1j * sp.random(6, 12, density=0.5,
                                                                                     random_state=4)
    A = fl.from_scipy(M, fl.Dim("NxNy"), ("K",), sizes={"Nx": 3, "Ny": 4})
    assert A.ishape == ("Nx", "Ny") and A.oshape == ("K",) and A.size("Ny") == 4
    x = torch.as_tensor(rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4)))
    np.testing.assert_allclose(A(x).numpy(), M @ x.numpy().reshape(-1), rtol=1e-12)
    y = torch.as_tensor(rng.standard_normal(6) + 0j)
    np.testing.assert_allclose(A.H(y).numpy().reshape(-1), M.conj().T @ y.numpy(), rtol=1e-12)
    assert check_adjoint(A, x) < 1e-12
    # leading batch dims become columns of one matmat
    B = fl.from_scipy(M, ("...", "N"), ("...", "K"))
    X = torch.as_tensor(rng.standard_normal((2, 5, 12)))
    np.testing.assert_allclose(B(X).numpy(), np.einsum("kn,abn->abk", M.toarray(), X.numpy()), rtol=1e-12)
    assert B(X).dtype == torch.complex128  # promoted with L's dtype


def test_from_scipy_round_trip():
    W = torch.randn(5, 4, dtype=torch.float64)
    E = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    back = fl.from_scipy(fl.to_scipy(E), ("N",), ("M",))
    x, y = torch.randn(4, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(back(x), E(x))
    torch.testing.assert_close(back.H(y), E.H(y))


def test_autograd_and_solve_through_a_scipy_operator():
    """The vjp of a scipy operator is its rmatvec: grad, backward, vmap and solve work."""
    rng = np.random.default_rng(5)
    Wn = rng.standard_normal((8, 5))
    A = fl.from_scipy(sla.aslinearoperator(Wn), ("N",), ("M",))
    W = torch.as_tensor(Wn)
    c = torch.as_tensor(rng.standard_normal(8))
    x = torch.as_tensor(rng.standard_normal(5))
    torch.testing.assert_close(grad(lambda x: (c * A(x)).sum())(x), W.T @ c)
    xr = x.clone().requires_grad_()
    (c * A(xr)).sum().backward()
    torch.testing.assert_close(xr.grad, W.T @ c)
    xs = torch.as_tensor(rng.standard_normal((3, 5)))
    torch.testing.assert_close(vmap(A)(xs), xs @ W.T)
    # an implicit-gradient solve on the scipy operator
    y = torch.as_tensor(rng.standard_normal(8))
    d = torch.as_tensor(rng.standard_normal(5))

    def loss(y):
        return (d * fl.alg.solve(A, y, method="lsqr", tol=1e-13)).sum()

    torch.testing.assert_close(grad(loss)(y), W @ torch.linalg.solve(W.T @ W, d), rtol=1e-9, atol=1e-12)
    got = vmap(lambda y: fl.alg.solve(A.N, A.H(y), tol=1e-13))(torch.stack([y, 2 * y]))
    torch.testing.assert_close(got[1], 2 * got[0])


def test_bridge_errors():
    F = fl.FFT(2)
    with pytest.raises(ValueError, match=r"does not fix the size of input dim 'Nx'.*sizes="):
        fl.to_scipy(F)
    D = fl.Diagonal(torch.ones(3), ("N",))
    with pytest.raises(ShapeError, match="sizes gives dim 'N' size 4"):
        fl.to_scipy(D, sizes={"N": 4})
    with pytest.raises(TypeError, match="must be a Linop"):
        fl.to_scipy(lambda x: x)
    M = np.ones((6, 12))
    with pytest.raises(ValueError, match=r"give the sizes of ishape dims \['Nx', 'Ny'\]"):
        fl.from_scipy(M, ("Nx", "Ny"), ("K",))
    with pytest.raises(ShapeError, match="hold 9 entries, but L of shape"):
        fl.from_scipy(M, ("Nx", "Ny"), ("K",), sizes={"Nx": 3, "Ny": 3})
    with pytest.raises(TypeError, match="expected a scipy LinearOperator or a matrix"):
        fl.from_scipy("not an operator", ("N",), ("M",))
    only_forward = sla.LinearOperator((2, 2), matvec=lambda v: v, dtype=np.float64)
    A = fl.from_scipy(only_forward, ("N",), ("M",))
    with pytest.raises(TypeError, match="failed to apply rmatvec.*needs L to define rmatvec"):
        A.H(torch.ones(2, dtype=torch.float64))
