"""Small helpers shared by the operator files."""

import torch

from ..dims import named

__all__ = ["check_tensor", "slice_axes", "check_slices"]


def check_tensor(op, name, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{type(op).__name__}: {name} must be a torch.Tensor, got {type(value).__name__}")


def slice_axes(t, axes, slices):
    """Slice tensor ``t`` along ``{dim: axis}`` by ``{dim: slice}``."""
    index = [slice(None)] * t.ndim
    hit = False
    for d, axis in axes.items():
        s = slices.get(d)
        if s is not None and s != slice(None):
            index[axis] = s
            hit = True
    return t[tuple(index)] if hit else t


def check_slices(op, slices, forbidden, why):
    """Raise if ``slices`` asks to split any of the ``forbidden`` dims."""
    for d in forbidden:
        s = slices.get(d)
        if s is not None and s != slice(None):
            n = op.size(d)
            if n is not None and slice(*s.indices(n)) == slice(0, n, 1):
                continue
            raise ValueError(f"{op._name()}: cannot split dim {d!r}: {why}")


def axis_of(shape, dim):
    """Axis of ``dim`` counted from the end of a tensor with named trailing ``shape``."""
    names = named(shape)
    return names.index(dim) - len(names)
