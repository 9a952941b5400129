"""A lean ``vmap`` over a flat list of leaves, for stacked tiles.

``torch.func.vmap`` spends most of its per-call time on pytree handling and
argument checks (about 100-200 µs for a small operator chain), which is the
whole budget of a batched operator on a GPU. Stacked tiles always call it
with the same, already validated layout, so outside ``torch.compile`` this
enters functorch's vmap level directly (the mechanism ``torch.func.vmap``
itself uses) and wraps only the leaves that carry the tile axis. Under
``torch.compile``, or where those functorch entry points are missing, it is
plain ``torch.func.vmap``.
"""

import torch

try:
    from torch._C._functorch import (
        _add_batch_dim,
        _remove_batch_dim,
        _vmap_decrement_nesting,
        _vmap_increment_nesting,
    )
except ImportError:  # pragma: no cover - older or newer torch without these
    _add_batch_dim = None  # type: ignore[assignment]

__all__ = ["vmap_leaves"]


def vmap_leaves(fn, leaves, axes, x, x_axis, size):
    """``vmap(fn, in_dims=(axes, x_axis))(leaves, x)`` with output dim 0."""
    if _add_batch_dim is None or torch.compiler.is_compiling():
        return torch.func.vmap(fn, in_dims=(list(axes), x_axis))(leaves, x)
    level = _vmap_increment_nesting(size, "error")
    try:
        batched = [_add_batch_dim(t, 0, level) if a == 0 else t for t, a in zip(leaves, axes)]
        out = fn(batched, _add_batch_dim(x, x_axis, level) if x_axis is not None else x)
        return _remove_batch_dim(out, level, size, 0)
    finally:
        _vmap_decrement_nesting()
