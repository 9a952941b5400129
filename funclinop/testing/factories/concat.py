"""Factories for the block composites Concat and Stack."""

import torch

from ... import ops
from ...concat import Concat, Stack
from ...dims import fresh
from ..registry import NotApplicable, pick, randn, register_factory


def _dense_rows(gen, dtype, dims, m, rows, c):
    names = tuple(dims)
    oshape = tuple(m if d == c else d for d in names)
    return ops.Dense(randn(gen, (rows, dims[c]), dtype), (m, c), names, oshape)


@register_factory("Concat.vertical", min_size=0)
def concat_vertical(gen, dtype, dims, avoid):
    m = fresh("M", set(avoid) | set(dims))
    c = list(dims)[-1]
    return Concat(_dense_rows(gen, dtype, dims, m, 2, c), _dense_rows(gen, dtype, dims, m, 1, c), odim=m)


@register_factory("Concat.blockdiag", min_size=2)
def concat_blockdiag(gen, dtype, dims, avoid):
    names = tuple(dims)
    x, n = names[0], dims[names[0]]
    k = 1 + int(torch.randint(n - 1, (1,), generator=gen))
    rest = tuple(dims[d] for d in names[1:])
    return Concat(
        ops.Diagonal(randn(gen, (k,) + rest, dtype), names),
        ops.Diagonal(randn(gen, (n - k,) + rest, dtype), names),
        idim=x, odim=x,
    )


@register_factory("Concat.horizontal", min_size=2)
def concat_horizontal(gen, dtype, dims, avoid):
    names = tuple(dims)
    x, n = names[0], dims[names[0]]
    m = fresh("M", set(avoid) | set(dims))
    oshape = (m,) + names[1:]
    k = 1 + int(torch.randint(n - 1, (1,), generator=gen))
    return Concat(
        ops.Dense(randn(gen, (3, k), dtype), (m, x), names, oshape),
        ops.Dense(randn(gen, (3, n - k), dtype), (m, x), names, oshape),
        idim=x,
    )


@register_factory("Stack", min_size=0)
def stack(gen, dtype, dims, avoid):
    names = tuple(dims)
    s = fresh("S", set(avoid) | set(dims))
    return Stack(
        ops.Scalar(randn(gen, (), dtype), names),
        ops.Diagonal(randn(gen, tuple(dims.values()), dtype), names),
        odim=s,
    )


@register_factory("Stack.blockdiag")
def stack_blockdiag(gen, dtype, dims, avoid):
    names = tuple(dims)
    if dims[names[0]] != 2:
        raise NotApplicable("Stack.blockdiag needs a leading dim of size 2")
    inner = dict(list(dims.items())[1:])
    if not inner:
        raise NotApplicable("Stack.blockdiag needs two dims")
    blocks = [ops.Diagonal(randn(gen, tuple(inner.values()), dtype), tuple(inner)) for _ in range(2)]
    return Stack(*blocks, idim=names[0], odim=names[0])


@register_factory("Stack.index")
def stack_index(gen, dtype, dims, avoid):
    """New dims placed by ``(name, index)``, counted from either end."""
    names = tuple(dims)
    k = int(torch.randint(len(names) + 1, (1,), generator=gen))
    index = k - (len(names) + 1) * int(torch.randint(2, (1,), generator=gen))  # k or its negative twin
    if k < len(names) and dims[names[k]] == 2 and len(names) > 1:  # block-diagonal over names[k]
        inner = {d: n for d, n in dims.items() if d != names[k]}
        blocks = [ops.Diagonal(randn(gen, tuple(inner.values()), dtype), tuple(inner)) for _ in range(2)]
        spec = (names[k], index + (index < 0))  # the inner shape has one dim fewer
        return Stack(*blocks, idim=spec, odim=spec)
    s = fresh("S", set(avoid) | set(dims))
    return Stack(ops.Scalar(randn(gen, (), dtype), names),
                 ops.Diagonal(randn(gen, tuple(dims.values()), dtype), names), odim=(s, index))


def _cuts(gen, n, parts):
    """``parts`` positive sizes summing to ``n`` (n >= parts)."""
    cuts = sorted(int(c) for c in torch.randperm(n - 1, generator=gen)[: parts - 1] + 1)
    edges = [0, *cuts, n]
    return tuple(b - a for a, b in zip(edges, edges[1:]))


@register_factory("Concat.rename", min_size=2)
def concat_rename(gen, dtype, dims, avoid):
    """Block-diagonal from input dim X to a new output dim M, with non-square blocks."""
    names = tuple(dims)
    x = names[pick(gen, len(names))]
    m = fresh("M", set(avoid) | set(dims))
    oshape = tuple(m if d == x else d for d in names)
    batch = [d for d in names if d != x][:1]
    blocks = []
    for k in _cuts(gen, dims[x], 2):
        wshape = tuple(batch) + (m, x)
        rows = 1 + pick(gen, 3)
        blocks.append(ops.Dense(randn(gen, tuple(dims[d] for d in batch) + (rows, k), dtype), wshape, names, oshape))
    return Concat(*blocks, idim=x, odim=m)


@register_factory("Stack.rename")
def stack_rename(gen, dtype, dims, avoid):
    """Block-diagonal from the leading input dim S (one block per entry) to a new output dim T."""
    names = tuple(dims)
    s, inner = names[0], dict(list(dims.items())[1:])
    if not inner or not 1 <= dims[s] <= 3:
        raise NotApplicable("Stack.rename needs a leading dim of size 1 to 3 and another dim")
    t = fresh("T", set(avoid) | set(dims))
    blocks = [ops.Diagonal(randn(gen, tuple(inner.values()), dtype), tuple(inner)) for _ in range(dims[s])]
    return Stack(*blocks, idim=s, odim=t)


@register_factory("Concat.uneven", min_size=2)
def concat_uneven(gen, dtype, dims, avoid):
    """Blocks that act on any size of X (Scalar, Identity), given ``block_sizes``."""
    names = tuple(dims)
    x = names[pick(gen, len(names))]
    sizes = _cuts(gen, dims[x], min(dims[x], 2 + pick(gen, 2)))
    blocks = [ops.Scalar(randn(gen, (), dtype), names) if pick(gen, 3) else ops.Identity(names) for _ in sizes]
    return Concat(*blocks, idim=x, odim=x, block_sizes=sizes)
