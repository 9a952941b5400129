"""Factories for Rearrange, SumReduce and Repeat."""

from ... import ops
from ...dims import fresh, fresh_names
from ..registry import NotApplicable, perm, pick, register_factory


@register_factory("Rearrange")
def rearrange(gen, dtype, dims, avoid):
    names = tuple(dims)
    axes = [f"a{i}" for i in range(len(names))]
    order = perm(gen, len(names))
    out_axes = [axes[i] for i in order]
    groups = [[a] for a in out_axes]
    lengths = {}
    if len(groups) > 1 and pick(gen, 2):  # merge two neighbours into one composite axis
        k = pick(gen, len(groups) - 1)
        groups[k:k + 2] = [groups[k] + groups[k + 1]]
        lengths[groups[k][0]] = dims[names[axes.index(groups[k][0])]]
    if pick(gen, 3) == 0:  # a unit axis
        groups.insert(pick(gen, len(groups) + 1), [])
    opattern = " ".join(f"({' '.join(g)})" if len(g) != 1 else g[0] for g in groups)
    onames = list(fresh_names(["R" + "".join(g) if g else "U" for g in groups], set(avoid) | set(dims)))
    for k, g in enumerate(groups):  # a single axis may keep its input name (a splittable dim)
        if len(g) == 1 and pick(gen, 2):
            onames[k] = names[axes.index(g[0])]
    return ops.Rearrange(" ".join(axes), opattern, names, onames, lengths)


@register_factory("SumReduce")
def sum_reduce(gen, dtype, dims, avoid):
    names = tuple(dims)
    if len(names) < 2:
        raise NotApplicable("SumReduce needs a dim left over")
    r = names[pick(gen, len(names))]
    kept = [d for d in names if d != r]
    kept = [kept[i] for i in perm(gen, len(kept))]
    return ops.SumReduce(names, tuple(kept), sizes={r: dims[r]})


@register_factory("Repeat", min_size=0)
def repeat(gen, dtype, dims, avoid):
    names = list(dims)
    new = fresh("R", set(avoid) | set(dims))
    onames = [names[i] for i in perm(gen, len(names))]
    onames.insert(pick(gen, len(onames) + 1), new)
    if pick(gen, 4) == 0:
        return ops.Repeat({}, tuple(names), tuple(onames), broadcast_dims=(new,))
    return ops.Repeat({new: 1 + pick(gen, 3)}, tuple(names), tuple(onames))
