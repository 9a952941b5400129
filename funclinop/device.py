"""Device placement: ToDevice, and ``to`` as a storage-sharing-aware tree map."""

import optree
import torch
import typing
from typing import Any, TypeVar, Union

from .dims import as_shape
from .linop import Linop, SameShape, static

__all__ = ["ToDevice", "to", "as_device", "leaf_devices", "DeviceLike"]

DeviceLike = Union[torch.device, str, int]
"""What names a device: a ``torch.device``, ``"cuda:0"``, or a CUDA index."""

T = TypeVar("T")


def as_device(device: DeviceLike) -> torch.device:
    """A normalised ``torch.device``: ``"cuda"`` becomes ``cuda:<current>``."""
    if isinstance(device, Linop):
        raise TypeError("as_device: expected a device, got a Linop")
    try:
        device = torch.device(device)
    except (TypeError, RuntimeError) as e:
        raise TypeError(f"not a device: {device!r}") from e
    if device.type == "cuda" and device.index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        device = torch.device("cuda", index)
    return device


def leaf_devices(tree: Any) -> set[torch.device]:
    """The devices of a pytree's tensor leaves."""
    return {t.device for t in optree.tree_leaves(tree) if isinstance(t, torch.Tensor)}


class ToDevice(SameShape, Linop):
    """Moves its input from ``idevice`` to ``odevice``; the adjoint moves it back.

    ``"cuda"`` and ``"cuda:0"`` name the same device (when 0 is current).

    >>> import torch, funclinop as fl
    >>> T = fl.ToDevice("cpu", "meta")
    >>> T(torch.ones(2)).device, T.H.odevice
    (device(type='meta'), device(type='cpu'))
    """

    idevice: torch.device = static(converter=lambda d, what: as_device(d))
    odevice: torch.device = static(converter=lambda d, what: as_device(d))
    ioshape: tuple = static(default=None, converter=as_shape)

    def apply(self, x):
        return x.to(self.odevice)

    def apply_adjoint(self, y):
        return y.to(self.idevice)

    def adjoint(self):
        return ToDevice(self.odevice, self.idevice, self.ioshape)

    def normal(self):
        from .ops.identity import Identity

        return Identity(self.ioshape)

    def tile(self, slices):
        return self

    def _device_flow(self, parts):
        return self.idevice, (None if self.odevice == self.idevice else self.odevice)


def _span(t):
    """[first, last + 1) element range of the storage that ``t`` touches."""
    if t.numel() == 0:
        return t.storage_offset(), t.storage_offset()
    last = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return t.storage_offset(), last + 1


def _plain(t):
    """``t`` without its lazy conj/neg bits, and a function that puts them back."""
    conj, neg = t.is_conj(), t.is_neg()
    base = t.conj() if conj else t
    base = base._neg_view() if neg else base

    def restore(u):
        u = u._neg_view() if neg else u
        return u.conj() if conj else u

    return base, restore


def _cast(dtype, t):
    if dtype is None or not (t.is_floating_point() or t.is_complex()):
        return t.dtype
    real = dtype.to_real() if dtype.is_complex else dtype
    return real.to_complex() if t.is_complex() else real


def to(tree: T, device: DeviceLike | None = None, dtype: torch.dtype | None = None, *, copy: bool = False) -> T:
    """Move (and/or cast) every tensor leaf of a pytree, keeping storage sharing.

    Leaves that share storage before the move share one copy after it
    (``A.N`` holds ``A``'s weight and its conjugate view: it is copied once).
    Only the part of a storage the leaves touch is copied, so a tile moves
    its own block, not the whole weight. ``dtype`` casts floating leaves to
    its precision, real stays real and complex stays complex. ``copy=True``
    copies leaves that are already in place too (as ``Tensor.to``), so a
    tile no longer holds the whole storage it was cut from.

    >>> import torch, funclinop as fl
    >>> A = fl.Dense(torch.randn(3, 4, dtype=torch.complex64))
    >>> B = fl.to(A.N, "meta")
    >>> {t.device.type for t in fl.linop.optree.tree_leaves(B)}
    {'meta'}
    """
    device = None if device is None else as_device(device)
    leaves, spec = optree.tree_flatten(typing.cast(typing.Any, tree), none_is_leaf=True)
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(leaves):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            base, _ = _plain(t)
            key = (base.untyped_storage().data_ptr(), base.device, base.dtype)
            groups.setdefault(key, []).append(i)
    out = list(leaves)
    for i, t in enumerate(leaves):
        if isinstance(t, torch.Tensor) and t.device.type == "meta":
            out[i] = t.to(device=device or t.device, dtype=_cast(dtype, t))
    for members in groups.values():
        _move_group(leaves, out, members, device, dtype, copy)
    return typing.cast(T, optree.tree_unflatten(spec, out))


def _move_group(leaves, out, members, device, dtype, copy=False):
    first = leaves[members[0]]
    target = device or first.device
    new_dtype = _cast(dtype, first)
    if not copy and target == first.device and new_dtype == first.dtype:
        return
    bases = [_plain(leaves[i]) for i in members]
    spans = [_span(b) for b, _ in bases]
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    used = sum(b.numel() for b, _ in bases)
    if hi - lo > 2 * used:  # sparse views of a big storage: copy each on its own
        for i, (b, restore) in zip(members, bases):
            out[i] = restore(b.to(device=target, dtype=new_dtype, copy=copy))
        return
    b0 = bases[0][0]
    region = b0.as_strided((hi - lo,), (1,), lo).to(device=target, dtype=new_dtype, copy=copy)
    for i, (b, restore) in zip(members, bases):
        out[i] = restore(region.as_strided(b.shape, b.stride(), b.storage_offset() - lo))
