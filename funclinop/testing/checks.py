"""Checks for users' own operators: adjointness, normal, pytree behaviour,
and the dense matrix of an operator as an independent reference."""

import math
import typing

import optree
import torch

from ..dims import named
from ..linop import Linop, tree_equal
from .registry import randn

__all__ = ["check_adjoint", "check_normal", "check_pytree", "check_dense", "to_dense", "default_rtol", "rtol_for",
           "inner", "random_input"]


def default_rtol(dtype):
    """A relative tolerance that single and double precision both meet."""
    return 1e-4 if dtype in (torch.float32, torch.complex64, torch.float16, torch.bfloat16) else 1e-10


def inner(a, b):
    """<a, b> = sum(conj(a) * b), in double precision."""
    a = a.to(torch.complex128) if a.is_complex() or b.is_complex() else a.double()
    b = b.to(a.dtype)
    return torch.vdot(a.reshape(-1), b.reshape(-1))


def _floating(A):
    return [t for t in optree.tree_leaves(A)
            if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())]


def _lowest(dtypes):
    """The lowest real precision among ``dtypes``."""
    return min((d.to_real() for d in dtypes), key=lambda d: d.itemsize)


def rtol_for(A, x):
    """The default tolerance for ``A`` applied to ``x``: results are as accurate
    as the lowest precision among the input and the operator's floating leaves."""
    return default_rtol(_lowest([x.dtype] + [t.dtype for t in _floating(A)]))


def _like(t, gen):
    return randn(gen, t.shape, t.dtype).to(t.device)


def random_input(A: Linop, dtype=None, *, seed=0, batch=()):
    """A random input for ``A`` from the sizes it fixes (plus ``batch`` dims).

    ``dtype`` defaults to the lowest precision among A's floating leaves
    with dims (0-dim leaves are scalars: they count only where there is no
    other; float64 if it has none); a complex leaf makes the input complex.
    Raises a ``ValueError`` naming an input dim whose size A does not fix.
    """
    shape = []
    for d in named(A.ishape):
        n = A.size(d)
        if n is None:
            raise ValueError(f"{A._name()}: the size of input dim {d!r} is not fixed; pass an input x")
        shape.append(n)
    leaves = [t for t in optree.tree_leaves(typing.cast(typing.Any, A)) if isinstance(t, torch.Tensor)]
    if dtype is None:
        floats = _floating(A)
        own = [t.dtype for t in floats if t.ndim > 0] or [t.dtype for t in floats]
        dtype = _lowest(own) if own else torch.float64
        if any(t.is_complex() for t in floats):
            dtype = dtype.to_complex()
    device = leaves[0].device if leaves else None
    return randn(torch.Generator().manual_seed(seed), tuple(batch) + tuple(shape), dtype).to(device)


def to_dense(A: Linop, shape, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """The matrix of ``A`` on inputs of ``shape``, built column by column: column
    ``j`` is ``A`` applied to the ``j``-th unit input (C order), flattened. An
    independent reference for ``A.H`` (its conjugate transpose) and ``A.N``.

    >>> import torch, funclinop as fl
    >>> fl.testing.to_dense(fl.Diagonal(torch.tensor([1.0, 2.0]), ("N",)), (2,), torch.float64)
    tensor([[1., 0.],
            [0., 2.]], dtype=torch.float64)
    """
    n = math.prod(shape)
    eye = torch.eye(n, dtype=dtype)
    cols = [A(eye[j].reshape(shape)).reshape(-1) for j in range(n)]
    if not cols:
        return torch.zeros(A(torch.zeros(shape, dtype=dtype)).numel(), 0, dtype=dtype)
    return torch.stack(cols, dim=1)


def check_dense(A: Linop, shape, dtype: torch.dtype = torch.complex128, *, seed: int = 0) -> torch.Tensor:
    """Check ``A.H`` and ``A.N`` against the dense matrix of ``A`` (see
    :func:`to_dense`) on random vectors; return the matrix."""
    M = to_dense(A, shape, dtype)
    gen = torch.Generator().manual_seed(seed)
    oshape = A(torch.zeros(shape, dtype=dtype)).shape
    y = randn(gen, (M.shape[0],), dtype)
    x = randn(gen, tuple(shape), dtype)
    torch.testing.assert_close(A.H(y.reshape(oshape)).reshape(-1), M.conj().T @ y)
    torch.testing.assert_close(A.N(x).reshape(-1), M.conj().T @ (M @ x.reshape(-1)))
    return M


def check_adjoint(A: Linop, x: torch.Tensor | None = None, y: torch.Tensor | None = None, *, rtol=None, seed=0):
    """The dot test: <A x, y> == <x, Aᴴ y>. Returns the relative error.

    ``x`` defaults to :func:`random_input` (A must fix its input sizes), ``y``
    to a random tensor shaped like ``A(x)``. Raises
    ``AssertionError`` with the measured error when it exceeds ``rtol``
    (default from the lowest precision among x and A's floating leaves).

    >>> import torch, funclinop as fl
    >>> from funclinop.testing import check_adjoint
    >>> A = fl.Dense(torch.randn(3, 4, dtype=torch.float64))
    >>> check_adjoint(A, torch.randn(4, dtype=torch.float64)) < 1e-12
    True
    """
    gen = torch.Generator().manual_seed(seed)
    if x is None:
        x = random_input(A, seed=seed)
    Ax = A(x)
    if y is None:
        y = _like(Ax, gen)
    AHy = A.H(y)
    if AHy.shape != x.shape:
        raise AssertionError(f"{A._name()}: adjoint returned shape {tuple(AHy.shape)}, input was {tuple(x.shape)}")
    lhs, rhs = inner(Ax, y), inner(x, AHy)
    scale = (torch.linalg.vector_norm(Ax.double() if not Ax.is_complex() else Ax) *
             torch.linalg.vector_norm(y.double() if not y.is_complex() else y))
    err = float(abs(lhs - rhs) / scale) if scale > 0 else float(abs(lhs - rhs))
    tol = rtol_for(A, x) if rtol is None else rtol
    if not err <= tol:
        raise AssertionError(f"{A._name()}: adjoint test failed, <Ax,y>={complex(lhs):.6g}, <x,AHy>={complex(rhs):.6g}, relative error {err:.3g} > {tol:.1g}")
    return err


def check_normal(A: Linop, x: torch.Tensor | None = None, *, rtol=None, seed=0):
    """``A.N(x) == A.H(A(x))`` and ``A.N`` maps ``A.ishape`` to itself. Returns the relative error."""
    if x is None:
        x = random_input(A, seed=seed)
    N = A.normal()
    if named(N.ishape) != named(A.ishape) or named(N.oshape) != named(A.ishape):
        raise AssertionError(f"{A._name()}: normal has shapes {N.ishape} -> {N.oshape}, expected {A.ishape}")
    got, want = N(x), A.H(A(x))
    err = _rel(got, want)
    tol = rtol_for(A, x) if rtol is None else rtol
    if not err <= tol:
        raise AssertionError(f"{A._name()}: normal differs from A.H(A(x)) by {err:.3g} > {tol:.1g}")
    return err


def _rel(a, b):
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    d = torch.linalg.vector_norm((a - b).reshape(-1))
    n = torch.linalg.vector_norm(b.reshape(-1))
    return float(d / n) if n > 0 else float(d)


def check_pytree(A: Linop, x: torch.Tensor | None = None, *, rtol=None, seed=0):
    """Pytree behaviour: flatten/unflatten round trip (optree and torch),
    the gradient with respect to A has A's type and treedef, and vmap over a
    stack of two copies of A equals applying each."""
    import torch.utils._pytree as tp

    if x is None:
        x = random_input(A, seed=seed)

    leaves, spec = optree.tree_flatten(typing.cast(typing.Any, A))
    if not tree_equal(optree.tree_unflatten(spec, leaves), A):
        raise AssertionError(f"{A._name()}: optree round trip changed the operator")
    tleaves, tspec = tp.tree_flatten(A)
    if not tree_equal(tp.tree_unflatten(tleaves, tspec), A):
        raise AssertionError(f"{A._name()}: torch pytree round trip changed the operator")
    tensors = lambda ls: [t for t in ls if isinstance(t, torch.Tensor)]
    if len(tensors(tleaves)) != len(tensors(leaves)) or any(
            a is not b for a, b in zip(tensors(tleaves), tensors(leaves))):
        raise AssertionError(f"{A._name()}: optree and torch see different tensor leaves")
    tol = default_rtol(x.dtype) if rtol is None else rtol

    def loss(op):
        y = op(x)
        return (y.abs().square() if y.is_complex() else y.square()).sum()

    diff = [isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) for t in tleaves]
    if all(diff):
        g = torch.func.grad(loss)(A)
        if type(g) is not type(A) or tp.tree_structure(g) != tspec:
            raise AssertionError(f"{A._name()}: grad returned {type(g).__name__}, not the operator's type")
    elif any(diff):
        # Integer leaves (index tensors) have no gradient: differentiate the
        # floating-point leaves only and put the operator back together.
        def loss_of(float_leaves):
            it = iter(float_leaves)
            leaves = [next(it) if d else t for t, d in zip(tleaves, diff)]
            return loss(tp.tree_unflatten(leaves, tspec))

        g = torch.func.grad(loss_of)([t for t, d in zip(tleaves, diff) if d])
        if [t.shape for t in g] != [t.shape for t, d in zip(tleaves, diff) if d]:
            raise AssertionError(f"{A._name()}: gradient leaves do not match the operator's leaves")
    if not any(isinstance(t, torch.Tensor) for t in tleaves):
        return True
    stacked = tp.tree_map(lambda t: torch.stack([t, t]) if isinstance(t, torch.Tensor) else t, A)
    ys = torch.func.vmap(lambda op, x: op(x), in_dims=(0, None))(stacked, x)
    err = _rel(ys[1], A(x))
    if not err <= tol:
        raise AssertionError(f"{A._name()}: vmap over a stack of operators differs by {err:.3g}")
    return True
