"""Small helpers shared by the operator files."""

import torch

__all__ = ["check_tensor", "slice_axes", "check_slices", "fixed_kind", "int_tuple"]


def check_tensor(op, name, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{type(op).__name__}: {name} must be a torch.Tensor, got {type(value).__name__}")


def dim_tuple(names, what="dims"):
    """Converter: a sequence of dim names (None: none) as a tuple."""
    return tuple(names or ())


def int_tuple(value, what, *, minimum=1, length=None, scalar=False):
    """Validate a tuple of ints (a list or torch.Size too) of at least ``minimum``.

    ``what`` names the operator and argument in errors; ``length`` fixes the
    number of entries; ``scalar=True`` accepts one int for all of them.
    """
    if scalar and isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * (length or 1)
    if not isinstance(value, (tuple, list, torch.Size)):
        raise TypeError(f"{what} must be a tuple of ints, got {type(value).__name__}")
    value = tuple(value)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{what} must be a tuple of ints, got {value!r}")
        if v < minimum:
            kind = {0: "non-negative", 1: "positive"}.get(minimum, f"at least {minimum}")
            raise ValueError(f"{what} must hold {kind} ints, got {value}")
    if length is not None and len(value) != length:
        raise ValueError(f"{what} has {len(value)} entries, expected {length} (one per grid axis)")
    return value


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


def fixed_kind(op, dim, fixed):
    """``op``'s split kind by name, None for the ``fixed`` dims its tiles cannot slice."""
    from ..linop import Linop

    return None if dim in fixed else Linop.split_kind(op, dim)


def check_slices(op, slices, forbidden, why):
    """Raise if ``slices`` asks to split any of the ``forbidden`` dims."""
    for d in forbidden:
        s = slices.get(d)
        if s is not None and s != slice(None):
            n = op.size(d)
            if n is not None and slice(*s.indices(n)) == slice(0, n, 1):
                continue
            raise ValueError(f"{op._name()}: cannot split dim {d!r}: {why}")
