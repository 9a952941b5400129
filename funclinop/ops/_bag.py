"""Interpolation's two sparse products as fused weighted gathers, with their transforms.

A stencil ``(idx, w)`` of ``K`` locations by ``t`` taps into a table of ``R``
rows (a flattened grid, columns = everything interpolated alike) defines

- ``gather``:  ``out[k] = Σ_j w[k, j] · table[idx[k, j]]``  (``R`` rows → ``K``);
- ``scatter``: its transpose, ``out[r] = Σ_{idx[k, j] = r} w[k, j] · vals[k]``.

Both run as one ``embedding_bag`` (a weighted sum of table rows per bag,
without materialising the taps): ``gather`` with one bag of ``t`` taps per
location, ``scatter`` with one bag per grid row, through the transposed
stencil computed once by :func:`transpose`. ``embedding_bag`` has no
forward-mode derivative and no batching rule, so both are autograd Functions
whose backward is the other product, whose jvp is linear in the tangents and
whose vmap folds the batch into the columns (a batch of data) or the rows
(a batch of stencils: stacked tiles) of one call.
"""

import torch
import torch.nn.functional as F

__all__ = ["gather", "scatter", "transpose"]


def transpose(idx, nrows):
    """``(src, order, offsets)``: the stencil sorted by row, for ``scatter``.

    ``order`` sorts the flattened taps by row, ``src = order // t`` is the
    location of each, and row ``r``'s taps are ``order[offsets[r]:offsets[r + 1]]``.
    """
    flat = idx.reshape(-1)
    # int32 keys sort three times faster (a radix sort on fewer bytes)
    keys = flat.to(torch.int32) if nrows < 2**31 else flat
    order = torch.argsort(keys, stable=True)
    counts = torch.zeros(nrows, dtype=torch.int64, device=idx.device).scatter_add_(0, flat, torch.ones_like(flat))
    offsets = torch.cumsum(counts, 0) - counts
    return order // max(idx.shape[-1], 1), order, offsets


def _bag_gather(table, w, idx):
    if table.shape[1] == 0:  # no columns (an empty batch): embedding_bag refuses
        return table.new_zeros(idx.shape[0], 0)
    return F.embedding_bag(idx, table, per_sample_weights=w, mode="sum")


def _bag_scatter(vals, w, src, order, offsets):
    if vals.shape[1] == 0:
        return vals.new_zeros(offsets.shape[0], 0)
    return F.embedding_bag(src, vals, offsets, per_sample_weights=w.reshape(-1)[order], mode="sum")


def _tap_products(rows, idx, per_location):
    """``Σ_c rows[idx[k, j], c] · per_location[k, c]``: the derivative with respect to ``w[k, j]``."""
    return (rows[idx] * per_location[:, None, :]).sum(-1)


def _add(a, b):
    return b if a is None else a if b is None else a + b


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(table, w, idx, src, order, offsets):
        return _bag_gather(table, w, idx)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, g):
        table, w, idx, src, order, offsets = ctx.saved_tensors
        gt = _Scatter.apply(g, w, idx, src, order, offsets) if ctx.needs_input_grad[0] else None
        gw = _tap_products(table, idx, g) if ctx.needs_input_grad[1] else None
        return gt, gw, None, None, None, None

    @staticmethod
    def jvp(ctx, t_table, t_w, *_):
        table, w, idx, src, order, offsets = ctx.saved_tensors
        a = None if t_table is None else _Gather.apply(t_table, w, idx, src, order, offsets)
        b = None if t_w is None else _Gather.apply(table, t_w, idx, src, order, offsets)
        return _add(a, b)

    @staticmethod
    def vmap(info, in_dims, table, w, idx, src, order, offsets):
        return _batched(_Gather, info, in_dims, table, w, idx, src, order, offsets)


class _Scatter(torch.autograd.Function):
    @staticmethod
    def forward(vals, w, idx, src, order, offsets):
        return _bag_scatter(vals, w, src, order, offsets)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, g):
        vals, w, idx, src, order, offsets = ctx.saved_tensors
        gv = _Gather.apply(g, w, idx, src, order, offsets) if ctx.needs_input_grad[0] else None
        gw = _tap_products(g, idx, vals) if ctx.needs_input_grad[1] else None
        return gv, gw, None, None, None, None

    @staticmethod
    def jvp(ctx, t_vals, t_w, *_):
        vals, w, idx, src, order, offsets = ctx.saved_tensors
        a = None if t_vals is None else _Scatter.apply(t_vals, w, idx, src, order, offsets)
        b = None if t_w is None else _Scatter.apply(vals, t_w, idx, src, order, offsets)
        return _add(a, b)

    @staticmethod
    def vmap(info, in_dims, vals, w, idx, src, order, offsets):
        return _batched(_Scatter, info, in_dims, vals, w, idx, src, order, offsets)


def _batched(fn, info, in_dims, data, w, idx, src, order, offsets):
    """One call for a vmapped batch: data batched alone folds into the columns;
    a batched stencil folds every operand into the rows (stencil ``b`` reads
    and writes rows ``b · R ...``)."""
    ddim, *sdims = in_dims
    size = info.batch_size
    if all(d is None for d in sdims):
        d = data.movedim(ddim, -2)  # (rows, B, c)
        out = fn.apply(d.reshape(d.shape[0], -1), w, idx, src, order, offsets)
        return out.reshape(out.shape[0], size, -1), 1

    def stack(t, dim):
        return t.movedim(dim, 0) if dim is not None else t.expand(size, *t.shape)

    w, idx, src, order, offsets = (stack(t, d) for t, d in zip((w, idx, src, order, offsets), sdims))
    data = stack(data, ddim)
    nrows = offsets.shape[-1]  # grid rows: the gather's input, the scatter's output
    nloc, ntaps = idx.shape[-2], idx.shape[-1]
    b = torch.arange(size, device=idx.device)
    shift = (b * nrows).view(size, 1, 1)
    idx = (idx + shift).reshape(-1, ntaps)
    src = (src + (b * nloc).view(size, 1)).reshape(-1)
    order = (order + (b * nloc * ntaps).view(size, 1)).reshape(-1)
    offsets = (offsets + (b * nloc * ntaps).view(size, 1)).reshape(-1)
    out = fn.apply(data.reshape(-1, data.shape[-1]), w.reshape(-1, ntaps), idx, src, order, offsets)
    return out.reshape(size, -1, out.shape[-1]), 0


def gather(table, w, idx, src, order, offsets):
    """``out[k] = Σ_j w[k, j] · table[idx[k, j]]`` for a real ``table`` of shape ``(R, c)``."""
    return _Gather.apply(table, w, idx, src, order, offsets)


def scatter(vals, w, idx, src, order, offsets):
    """The transpose of :func:`gather`: ``vals`` of shape ``(K, c)`` to ``(R, c)``."""
    return _Scatter.apply(vals, w, idx, src, order, offsets)
