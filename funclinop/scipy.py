"""A bridge to ``scipy.sparse.linalg``: operators out (``to_scipy``) and in (``from_scipy``).

scipy is an optional dependency, imported when one of these functions runs.
``to_scipy(A)`` opens scipy's solvers and eigensolvers (``eigsh``, ``svds``,
``gmres``, ``lsmr``) to any operator; ``from_scipy(L, ishape, oshape)`` makes a
scipy ``LinearOperator`` (or a matrix) a named operator whose adjoint is
``L.rmatvec`` and through which autograd propagates.
"""

import dataclasses
import math

import numpy as np
import torch
from typing import Any, Mapping, Sequence

from .dims import ELLIPSIS, as_shape, named
from .errors import ShapeError
from .linop import Linop
from .ops.function import FunctionLinop

__all__ = ["to_scipy", "from_scipy"]


# ---- to scipy -----------------------------------------------------------------------


def to_scipy(A: Linop, sizes: Mapping[str, int] | None = None, dtype: torch.dtype | None = None) -> Any:
    """``A`` as a ``scipy.sparse.linalg.LinearOperator`` on flat numpy vectors.

    The input vector is ``A``'s input flattened in the order of its named
    dims (C order), likewise the output; ``rmatvec`` applies ``A.H``. A
    ``"..."`` in A's shapes adds no dims: the scipy operator acts on one
    vector (``matmat`` on a block of them, through ``torch.func.vmap``).

    Parameters
    ----------
    A : Linop
    sizes : dict, optional
        ``{dim: size}`` for input dims whose size A does not fix (the dims
        of an FFT, say); the output sizes follow from applying A once.
    dtype : torch.dtype, optional
        The dtype of the scipy operator; by default that of A's tensors
        promoted with that of its output for such an input (so an FFT is
        complex), float64 when A has no tensors.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> from scipy.sparse.linalg import svds
    >>> W = torch.randn(6, 4, dtype=torch.float64)
    >>> L = fl.to_scipy(fl.Dense(W, ("M", "N"), ("N",), ("M",)))
    >>> L.shape, L.dtype
    ((6, 4), dtype('float64'))
    >>> s = svds(L, k=1, return_singular_vectors=False)
    >>> bool(abs(s[0] - torch.linalg.matrix_norm(W, 2)) < 1e-10)
    True
    """
    import scipy.sparse.linalg as sla

    if not isinstance(A, Linop):
        raise TypeError(f"to_scipy: A must be a Linop, got {type(A).__name__}")
    sizes = dict(sizes or {})
    ishape = _input_sizes(A, sizes)
    dtype, device, oshape = _probe(A, ishape, dtype)
    n, m = math.prod(ishape), math.prod(oshape)

    def run(op, v, shape):
        x = torch.as_tensor(np.asarray(v))
        # a complex vector stays complex for a real operator
        x = x.to(dtype=torch.promote_types(dtype, x.dtype), device=device).reshape(shape)
        with torch.no_grad():
            return op(x)

    def matvec(v):
        return _numpy(run(A, v, ishape).reshape(m))

    def rmatvec(v):
        return _numpy(run(A.H, v, oshape).reshape(n))

    def matmat(V):
        return _numpy(run(torch.func.vmap(A), np.asarray(V).T, (-1,) + ishape).reshape(-1, m).T)

    def rmatmat(V):
        return _numpy(run(torch.func.vmap(A.H), np.asarray(V).T, (-1,) + oshape).reshape(-1, n).T)

    return sla.LinearOperator((m, n), matvec=matvec, rmatvec=rmatvec, matmat=matmat, rmatmat=rmatmat,
                              dtype=_numpy_dtype(dtype))


def _input_sizes(A, sizes):
    out = []
    for d in named(A.ishape):
        n = A.size(d)
        if n is None:
            n = sizes.get(d)
        elif d in sizes and sizes[d] != n:
            raise ShapeError(f"to_scipy: sizes gives dim {d!r} size {sizes[d]}, but {A._name()} has {n}")
        if n is None:
            raise ValueError(
                f"to_scipy: {A._name()} does not fix the size of input dim {d!r}; give it in sizes={{{d!r}: n}}"
            )
        out.append(int(n))
    return tuple(out)


def _probe(A, ishape, dtype):
    """``(dtype, device, output sizes)``, from A's tensors and A applied to zeros once
    (an operator may turn real into complex, as an FFT does)."""
    from .alg._vec import operator_dtype_device

    leaf_dtype, device = operator_dtype_device(A)
    probe_dtype = dtype or (leaf_dtype if leaf_dtype is not None else torch.float64)
    with torch.no_grad():
        out = A(torch.zeros(ishape, dtype=probe_dtype, device=device))
    return dtype or torch.promote_types(probe_dtype, out.dtype), device, tuple(out.shape)


def _numpy(t):
    return t.detach().resolve_conj().cpu().numpy()


def _numpy_dtype(dtype):
    return torch.empty((), dtype=dtype).numpy().dtype


def _torch_dtype(dtype):
    return torch.from_numpy(np.zeros((), dtype=dtype)).dtype


# ---- from scipy ---------------------------------------------------------------------


def from_scipy(L: Any, ishape: Sequence[str], oshape: Sequence[str],
               sizes: Mapping[str, int] | None = None) -> Linop:
    """A scipy ``LinearOperator`` (or anything ``aslinearoperator`` takes) as a named operator.

    The operator flattens its input's named dims (C order) into the vector
    ``L.matvec`` takes, and unflattens the result into ``oshape``; leading
    batch dims (a ``"..."``) become columns of one ``L.matmat``. Its adjoint
    applies ``L.rmatvec``. It is a :class:`FunctionLinop`, and autograd
    differentiates through it (the vjp is the adjoint), as do ``vmap`` and
    :func:`funclinop.alg.solve`; it computes in numpy, on the CPU.

    Parameters
    ----------
    L : scipy.sparse.linalg.LinearOperator, sparse or dense matrix
    ishape, oshape : dims (a compact string or a tuple, ``"..."`` allowed first)
    sizes : dict, optional
        ``{dim: size}``; a shape with one named dim takes its size from
        ``L.shape`` without it.

    Examples
    --------
    >>> import numpy as np, torch, funclinop as fl
    >>> M = np.arange(6.0).reshape(2, 3)
    >>> A = fl.from_scipy(M, ("...", "N"), ("...", "M"))
    >>> A(torch.ones(3, dtype=torch.float64))
    tensor([ 3., 12.], dtype=torch.float64)
    >>> A.H(torch.ones(4, 2, dtype=torch.float64)).shape
    torch.Size([4, 3])
    """
    import scipy.sparse.linalg as sla

    try:
        L = sla.aslinearoperator(L)
    except TypeError as e:
        raise TypeError(f"from_scipy: expected a scipy LinearOperator or a matrix, got {type(L).__name__}") from e
    ishape, oshape = as_shape(ishape, "from_scipy ishape"), as_shape(oshape, "from_scipy oshape")
    if (ishape[:1] == (ELLIPSIS,)) != (oshape[:1] == (ELLIPSIS,)):
        raise ShapeError(f"from_scipy: '...' must lead both ishape {ishape} and oshape {oshape} or neither")
    sizes = dict(sizes or {})
    m, n = L.shape
    isizes = _scipy_sizes(ishape, sizes, n, "ishape", L)
    osizes = _scipy_sizes(oshape, sizes, m, "oshape", L)
    forward = _ScipyMap(L, "matvec", isizes, osizes)
    adjoint = _ScipyMap(L, "rmatvec", osizes, isizes)
    all_sizes = dict(zip(named(ishape), isizes)) | dict(zip(named(oshape), osizes))
    return FunctionLinop(forward, None, adjoint_fn=adjoint, ishape=ishape, oshape=oshape, sizes=all_sizes)


def _scipy_sizes(shape, sizes, total, what, L):
    names = named(shape)
    if len(names) == 1 and names[0] not in sizes:
        return (total,)
    missing = [d for d in names if d not in sizes]
    if missing:
        raise ValueError(f"from_scipy: give the sizes of {what} dims {missing} in sizes= (L has shape {L.shape})")
    out = tuple(int(sizes[d]) for d in names)
    if math.prod(out) != total:
        raise ShapeError(
            f"from_scipy: {what} sizes {dict(zip(names, out))} hold {math.prod(out)} entries, "
            f"but L of shape {L.shape} takes {total}"
        )
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class _ScipyMap:
    """``x -> L.<method>(x)`` on the trailing named dims of a tensor (a static callable)."""

    L: object
    method: str
    isizes: tuple
    osizes: tuple

    def __call__(self, params, x):
        return _ScipyApply.apply(self, x)

    def numpy(self, x):
        """The map on a tensor, through numpy (no autograd)."""
        batch = x.shape[: x.ndim - len(self.isizes)]
        flat = x.detach().resolve_conj().reshape((-1, math.prod(self.isizes))).cpu().numpy()
        try:
            if self.method == "matvec":
                out = self.L.matmat(flat.T)
            else:
                out = self.L.rmatmat(flat.T)
        except (NotImplementedError, TypeError) as e:
            # scipy raises either when an operator was built without rmatvec
            raise TypeError(
                f"from_scipy: {self.L!r} failed to apply {self.method} ({e}); "
                f"the {'adjoint' if self.method == 'rmatvec' else 'operator'} needs L to define {self.method}"
            ) from e
        out = torch.from_numpy(np.ascontiguousarray(np.asarray(out).T))
        dtype = torch.promote_types(x.dtype, _torch_dtype(self.L.dtype))
        return out.to(dtype=dtype, device=x.device).reshape(batch + self.osizes)

    def transpose(self):
        return _ScipyMap(self.L, "rmatvec" if self.method == "matvec" else "matvec", self.osizes, self.isizes)


class _ScipyApply(torch.autograd.Function):
    """A scipy map as a differentiable (and vmappable) tensor function: linear, so
    its vjp is the adjoint map and its jvp the map itself."""

    @staticmethod
    def forward(f, x):
        return f.numpy(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.f, ctx.real_input = inputs[0], not inputs[1].is_complex()

    @staticmethod
    def backward(ctx, g):
        g = _ScipyApply.apply(ctx.f.transpose(), g)
        return None, g.real if ctx.real_input and g.is_complex() else g

    @staticmethod
    def jvp(ctx, _, x_dot):
        return _ScipyApply.apply(ctx.f, x_dot)

    @staticmethod
    def vmap(info, in_dims, f, x):
        # the map acts on the trailing dims: the batch axis moves first and rides along
        return _ScipyApply.apply(f, x.movedim(in_dims[1], 0)), 0
