"""Transform helpers for operators with non-differentiable (integer) leaves."""

import torch
import torch.utils._pytree as tp
from typing import Any, Callable

__all__ = ["grad", "is_differentiable"]


def is_differentiable(leaf: Any) -> bool:
    """A floating-point or complex tensor."""
    return isinstance(leaf, torch.Tensor) and (leaf.is_floating_point() or leaf.is_complex())


def grad(f: Callable[..., torch.Tensor]) -> Callable[..., Any]:
    """``torch.func.grad`` of ``f(tree, *args)`` with respect to the floating
    leaves of ``tree`` only (as equinox's ``filter_grad``).

    Integer leaves (sampling indices, masks) cannot require gradients, so a
    plain ``torch.func.grad`` refuses operators that hold them. The result has
    the type and structure of ``tree``; its non-differentiable leaves are None.

    >>> import torch, funclinop as fl
    >>> A = fl.Chain(fl.Diagonal(torch.ones(4), ("Nx",)), fl.Sampling((torch.tensor([0, 2]),), (4,)))
    >>> g = fl.grad(lambda A: A(torch.arange(4.0)).sum())(A)
    >>> type(g).__name__, g.linops[0].weight
    ('Chain', tensor([0., 0., 2., 0.]))
    """

    def wrapped(tree, *args, **kwargs):
        leaves, spec = tp.tree_flatten(tree)
        mask = [is_differentiable(t) for t in leaves]

        def of_float_leaves(float_leaves):
            it = iter(float_leaves)
            full = [next(it) if m else t for t, m in zip(leaves, mask)]
            return f(tp.tree_unflatten(full, spec), *args, **kwargs)

        grads = iter(torch.func.grad(of_float_leaves)([t for t, m in zip(leaves, mask) if m]))
        return tp.tree_unflatten([next(grads) if m else None for m in mask], spec)

    return wrapped
