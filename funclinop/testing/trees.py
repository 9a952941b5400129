"""Random operator trees grown from the factory registry."""

import random

import optree
import torch

from .. import compose
from ..concat import Concat, Stack
from ..dims import fresh, named
from .registry import DTYPES, FACTORIES, NotApplicable, output_dims, randn

__all__ = ["random_leaf", "random_tree", "refresh_leaves", "NODES"]

# Inner nodes of random trees (chains twice: most pipelines are chains).
BLOCK_NODES = ("stack", "concat_rows", "blockdiag", "stack_blockdiag", "stack_rename")
NODES = ("chain", "chain", "add", "normal", "scale", "scale_python", "adjoint", "mixed") + BLOCK_NODES


def random_leaf(rng, gen, dtype, dims, used, types=None):
    """A random registered operator acting on ``dims`` (``{dim: size}``)."""
    names = sorted(types or FACTORIES)
    rng.shuffle(names)
    for name in names:
        f = FACTORIES[name]
        if dtype not in f.dtypes or len(dims) > f.max_dims or min(dims.values(), default=1) < f.min_size:
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


def _python_scalar(gen, dtype):
    c = float(randn(gen, (), torch.float64))
    return complex(c, float(randn(gen, (), torch.float64))) if dtype.is_complex else c


def random_tree(seed, dtype, dims, depth, types=None):
    """A random operator tree of the given nesting ``depth`` acting on ``dims``.

    Inner nodes (:data:`NODES`) are Chain, Add (of a subtree and a refreshed
    copy), the normal, adjoint or a scaling (by a 0-dim tensor or a Python
    number) of a subtree, a subtree whose leaves have another dtype (the
    tree then mixes dtypes, which promote), and block operators of subtrees: Stack along a new
    output dim, a vertical Concat along an output dim, a block-diagonal
    Concat with uneven blocks along an input dim, and block-diagonal Stacks
    from an input dim to itself or to a new name. A node that does not apply
    to the drawn dims falls back to a chain.
    """
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    used = set(dims)

    def twins(dims_a, dims_b, depth, dtype):
        """Two subtrees of the same structure over ``dims_a`` and ``dims_b``, or None."""
        state, gstate, taken = rng.getstate(), gen.get_state(), set(used)
        a = grow(dims_a, depth, dtype)
        after_a = set(used)
        rng.setstate(state)
        gen.set_state(gstate)
        used.clear()
        used.update(taken)
        b = refresh_leaves(gen, grow(dims_b, depth, dtype))
        used.update(after_a)
        return (a, b) if a.oshape == b.oshape else None

    def block(kind, dims, depth, dtype):
        names = list(dims)
        if kind == "stack":
            a = grow(dims, depth, dtype)
            return Stack(a, refresh_leaves(gen, a), odim=fresh("S", used))
        if kind == "concat_rows":
            a = grow(dims, depth, dtype)
            rows = [d for d in named(a.oshape) if a.size(d) and d not in named(a.ishape)]
            if not rows:
                return None
            return Concat(a, refresh_leaves(gen, a), odim=rng.choice(rows))
        if kind == "blockdiag":
            splittable = [d for d in names if dims[d] >= 2]
            if not splittable:
                return None
            x = rng.choice(splittable)
            k = rng.randint(1, dims[x] - 1)
            pair = twins({**dims, x: k}, {**dims, x: dims[x] - k}, depth, dtype)
            if pair is None or x not in named(pair[0].oshape) or pair[0].split_kind(x) != "diag":
                return None
            sa, sb = pair[0].dim_sizes(), pair[1].dim_sizes()
            if any(sb.get(d, n) != n for d, n in sa.items() if d != x):
                return None  # another dim's size follows x's (a padded copy of it, say)
            return Concat(*pair, idim=x, odim=x, block_sizes=(k, dims[x] - k))
        # a block-diagonal Stack over input dim x, one block per entry
        small = [d for d in names if 1 <= dims[d] <= 3 and len(names) > 1]
        if not small:
            return None
        x = rng.choice(small)
        inner = {d: n for d, n in dims.items() if d != x}
        a = grow(inner, depth, dtype)
        blocks = [a] + [refresh_leaves(gen, a) for _ in range(dims[x] - 1)]
        p = names.index(x)
        odim = x if kind == "stack_blockdiag" else fresh("T", used | set(a.dims))
        return Stack(*blocks, idim=(x, p), odim=(odim, min(p, len(named(a.oshape)))))

    def grow(dims, depth, dtype):
        if depth == 0:
            op = random_leaf(rng, gen, dtype, dims, used, types)
        else:
            kind = rng.choice(NODES)
            op = block(kind, dims, depth - 1, dtype) if kind in BLOCK_NODES else None
            if op is None and kind in BLOCK_NODES:
                kind = "chain"  # the block node does not apply to these dims
            if kind == "mixed":
                op = _retry_dtypes(lambda dt: grow(dims, depth - 1, dt), rng, dtype)
            a = grow(dims, depth - 1, dtype) if op is None else None
            if op is not None:
                pass
            elif kind == "chain":
                b = grow(output_dims(a, dims, dtype), depth - 1, dtype)
                op = compose.Chain(a, b)
            elif kind == "add":
                op = compose.Add(a, refresh_leaves(gen, a))
            elif kind == "normal":
                op = a.normal()
            elif kind == "scale":
                op = randn(gen, (), dtype) * a
            elif kind == "scale_python":
                op = _python_scalar(gen, dtype) * a
            else:
                # (Bᴴ) for a B whose output is dims: B = aᴴ-shaped via its normal
                op = a.normal().adjoint()
        used.update(op.dims)
        return op

    return grow(dict(dims), depth, dtype)


def _retry_dtypes(grow, rng, dtype):
    """A subtree in another dtype (None when no factory applies in any)."""
    others = [d for d in DTYPES if d != dtype]
    rng.shuffle(others)
    for dt in others:
        try:
            return grow(dt)
        except NotApplicable:
            continue
    return None
