"""Random operator trees grown from the factory registry."""

import random

import optree
import torch

from .. import compose
from .registry import FACTORIES, NotApplicable, output_dims, randn

__all__ = ["random_leaf", "random_tree", "refresh_leaves"]


def random_leaf(rng, gen, dtype, dims, used, types=None):
    """A random registered operator acting on ``dims`` (``{dim: size}``)."""
    names = sorted(types or FACTORIES)
    rng.shuffle(names)
    for name in names:
        f = FACTORIES[name]
        if dtype not in f.dtypes or len(dims) > f.max_dims or min(dims.values()) < f.min_size:
            continue
        try:
            return f.make(gen, dtype, dict(dims), frozenset(used))
        except NotApplicable:
            continue
    raise NotApplicable(f"no registered factory applies to {dims} with {dtype}")


def refresh_leaves(gen, op):
    """The same operator with new random floating-point leaves."""

    def fresh_leaf(t):
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            return randn(gen, t.shape, t.dtype).to(t.device)
        return t

    return optree.tree_map(fresh_leaf, op)


def random_tree(seed, dtype, dims, depth, types=None):
    """A random operator tree of the given nesting ``depth`` acting on ``dims``.

    Inner nodes are Chain, Add (of a subtree and a refreshed copy), the
    normal of a subtree, a scaled subtree and the adjoint of a subtree.
    """
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    used = set(dims)

    def grow(dims, depth):
        if depth == 0:
            op = random_leaf(rng, gen, dtype, dims, used, types)
        else:
            kind = rng.choice(["chain", "chain", "add", "normal", "scale", "adjoint"])
            a = grow(dims, depth - 1)
            if kind == "chain":
                b = grow(output_dims(a, dims, dtype), depth - 1)
                op = compose.Chain(a, b)
            elif kind == "add":
                op = compose.Add(a, refresh_leaves(gen, a))
            elif kind == "normal":
                op = a.normal()
            elif kind == "scale":
                op = randn(gen, (), dtype) * a
            else:
                # (Bᴴ) for a B whose output is dims: B = aᴴ-shaped via its normal
                op = a.normal().adjoint()
        used.update(op.dims)
        return op

    return grow(dict(dims), depth)
