"""Whole-tensor vector arithmetic shared by the solvers.

A tensor of any shape is one vector: inner products and norms run over every
axis, so leading batch dims are part of the vector, not separate problems
(use ``torch.func.vmap`` for independent problems).
"""

import optree
import torch

from ..errors import ShapeError
from ..linop import Linop

__all__ = ["inner", "norm2", "dot", "sqnorm", "bcast", "vwhere", "safe_div", "operator_dtype_device"]


def inner(a, b):
    """<a, b> = sum(conj(a) * b) over all axes."""
    return torch.vdot(a.reshape(-1), b.reshape(-1))


def norm2(a):
    """||a||², a real 0-dim tensor."""
    return inner(a, a).real


def dot(a, b, batched=False):
    """<a, b> per problem: over all axes, or over all but axis 0 when ``batched``
    (axis 0 then indexes independent problems and the result has one entry each)."""
    if batched:
        return torch.linalg.vecdot(a.flatten(1), b.flatten(1))
    return inner(a, b)


def sqnorm(a, batched=False):
    """||a||² per problem (real)."""
    return dot(a, a, batched).real


def bcast(s, v):
    """A per-problem scalar ``s`` (0-dim, or one entry per problem) shaped to scale ``v``."""
    return s if s.ndim == 0 else s.reshape(s.shape + (1,) * (v.ndim - s.ndim))


def vwhere(cond, a, b):
    """``torch.where`` with a per-problem condition and vector branches."""
    return torch.where(bcast(cond, a), a, b)


def safe_div(num, den):
    """num / den where den != 0, else 0.

    Both branches are finite, so neither the value nor its gradient (under
    autograd or ``torch.func``) ever becomes NaN.
    """
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, torch.ones_like(den), den))


def operator_dtype_device(A):
    """The promoted dtype and the device of an operator's floating leaves, or (None, None).

    As in the dtype rule, a 0-dim leaf (a scalar) can make the dtype complex
    but sets no precision: with only 0-dim leaves it is torch's default dtype.
    """
    dtype, device, complex_ = None, None, False
    for leaf in optree.tree_leaves(A):
        if isinstance(leaf, torch.Tensor) and (leaf.is_floating_point() or leaf.is_complex()):
            device = leaf.device if device is None else device
            complex_ = complex_ or leaf.is_complex()
            if leaf.ndim > 0:
                dtype = leaf.dtype if dtype is None else torch.promote_types(dtype, leaf.dtype)
    if complex_:
        dtype = torch.promote_types(dtype or torch.get_default_dtype(), torch.complex64)
    return dtype, device


def check_arguments(who, b, x0, max_iter):
    """The right-hand side, start and iteration count of a Krylov solver."""
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"{who}: b must be a torch.Tensor, got {type(b).__name__}")
    if x0 is not None and (not isinstance(x0, torch.Tensor) or x0.shape != b.shape):
        what = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
        raise ValueError(f"{who}: x0 must be a tensor shaped like b {tuple(b.shape)}, got {what}")
    if not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"{who}: max_iter must be a non-negative int, got {max_iter!r}")


def apply_square(A, v, what):
    """A v, refusing an operator that does not map v's shape to itself."""
    w = A(v)
    if w.shape != v.shape:
        name = A._name() if isinstance(A, Linop) else type(A).__name__
        raise ShapeError(
            f"{what} ({name}) maps a vector of shape {tuple(v.shape)} to {tuple(w.shape)}; "
            "it must map its input shape to itself (a Hermitian operator such as A.N)"
        )
    return w
