"""Convolution and Correlation (its adjoint) over the trailing 1-3 grid axes."""

import torch
import torch.nn.functional as F

from ..dims import Dim, ELLIPSIS, as_optional_shape, as_shape, fresh_names
from ..errors import ShapeError
from ..linop import Linop, derived, static
from ._util import check_slices, check_tensor, fixed_kind

__all__ = ["Convolution", "Correlation"]

_CONV = (F.conv1d, F.conv2d, F.conv3d)
_PADDING_MODES = ("zeros", "circular")


class _Filter(Linop):
    """Shared fields and plumbing of Convolution and Correlation."""

    kernel: torch.Tensor
    batch_shape: tuple = static(default=None, converter=as_shape)
    in_grid_shape: tuple = static(default=None, converter=as_optional_shape)
    out_grid_shape: tuple = static(default=None, converter=as_optional_shape)
    padding_mode: str = static(default="zeros")
    ishape: tuple = derived()
    oshape: tuple = derived()
    # (ndim, kernel front/back zero padding, symmetric conv padding, circular (left, right) pads)
    _geom: tuple = derived()
    _adjoint_geom: tuple = derived()  # the same for the adjoint (the other filter type)

    _flip = False  # Convolution flips the kernel; Correlation does not

    def _defaults(self):
        # grid names: Nx Ny Nz for the kernel's dims, fresh ones for the output
        if not isinstance(self.kernel, torch.Tensor):
            return {}
        igrid = self.in_grid_shape
        out = {} if igrid is not None else {"in_grid_shape": Dim("NxNyNz")[: self.kernel.ndim]}
        if self.out_grid_shape is None:
            igrid = out.get("in_grid_shape", igrid)
            out["out_grid_shape"] = fresh_names(igrid, set(self.batch_shape) | set(igrid))
        return out

    def _check(self):
        cls = type(self).__name__
        check_tensor(self, "kernel", self.kernel)
        ndim = self.kernel.ndim
        if ndim not in (1, 2, 3):
            raise ValueError(f"{cls}: kernel must have 1, 2 or 3 dims, got shape {tuple(self.kernel.shape)}")
        if self.kernel.numel() == 0:
            raise ValueError(f"{cls}: kernel is empty (shape {tuple(self.kernel.shape)})")
        if not (self.kernel.is_floating_point() or self.kernel.is_complex()):
            raise TypeError(f"{cls}: kernel must be floating point or complex, got {self.kernel.dtype}")
        if not isinstance(self.padding_mode, str):
            raise TypeError(f"{cls}: padding_mode must be a str, got {type(self.padding_mode).__name__}")
        if self.padding_mode not in _PADDING_MODES:
            raise ValueError(f"{cls}: padding_mode must be one of {_PADDING_MODES}, got {self.padding_mode!r}")
        igrid, ogrid = self.in_grid_shape, self.out_grid_shape
        for what, shape in (("in_grid_shape", igrid), ("out_grid_shape", ogrid)):
            if ELLIPSIS in shape:
                raise ShapeError(f"{cls}: {what} cannot contain '...', got {shape}")
        if len(igrid) < ndim:
            raise ShapeError(
                f"{cls}: kernel of shape {tuple(self.kernel.shape)} has {ndim} dims but the grid "
                f"{igrid} has only {len(igrid)}"
            )
        if len(ogrid) != len(igrid):
            raise ShapeError(f"{cls}: out_grid_shape {ogrid} must have as many dims as in_grid_shape {igrid}")

    def _precompute(self):
        cls, batch = type(self).__name__, self.batch_shape
        return dict(
            ishape=as_shape(batch + self.in_grid_shape, f"{cls} batch_shape + in_grid_shape"),
            oshape=as_shape(batch + self.out_grid_shape, f"{cls} batch_shape + out_grid_shape"),
            _geom=_geometry(self.kernel.shape, self._flip),
            _adjoint_geom=_geometry(self.kernel.shape, not self._flip),
        )

    def apply(self, x):
        ndim, kpad, padding, circ = self._geom
        w = self.kernel.flip(tuple(range(ndim))) if self._flip else self.kernel
        return _correlate(x, w, ndim, self.padding_mode, kpad, padding, circ)

    def apply_adjoint(self, y):
        ndim, kpad, padding, circ = self._adjoint_geom
        w = self.kernel.conj()
        w = w if self._flip else w.flip(tuple(range(ndim)))  # the adjoint filter flips when this one does not
        return _correlate(y, w, ndim, self.padding_mode, kpad, padding, circ)

    def _adjoint_as(self, cls):
        return cls(self.kernel.conj(), self.batch_shape, self.out_grid_shape,
                   self.in_grid_shape, self.padding_mode)

    def tile(self, slices):
        # Batch dims, and leading grid dims the kernel does not touch (when
        # they keep their name), split freely; spatial dims do not.
        check_slices(self, slices, self._fixed_dims(), "a convolution's grid dims cannot be split")
        return self

    def _fixed_dims(self):
        ndim = self._geom[0]
        free = [d for d, e in zip(self.in_grid_shape[:-ndim], self.out_grid_shape[:-ndim]) if d == e]
        return [d for d in self.in_grid_shape + self.out_grid_shape if d not in free]

    def split_kind(self, dim):
        return fixed_kind(self, dim, self._fixed_dims())

    def split_refusal(self, dim):
        return "convolves along it (or renames it)"


def _geometry(kshape, flip):
    """Padding that centres a kernel of size K at K // 2 (torchlinops' convention).

    As a correlation with weight w, output i reads inputs i - L ... i - L + K - 1:
    L = K - 1 - K // 2 for a (flipped) convolution kernel, L = K // 2 for a
    correlation. Zero padding pads the (small) weight to make L == R, so the
    conv runs with symmetric padding and the input is never copied.
    """
    ndim = len(kshape)
    left = tuple((k - 1 - k // 2) if flip else k // 2 for k in kshape)
    right = tuple(k - 1 - l for k, l in zip(kshape, left))
    padding = tuple(max(l, r) for l, r in zip(left, right))
    kpad = ()
    for l, r, p in reversed(tuple(zip(left, right, padding))):
        kpad += (p - l, p - r)  # F.pad order: last dim first
    kpad = kpad if any(kpad) else None
    circ = ()
    for l, r in reversed(tuple(zip(left, right))):
        circ += (l, r)
    return (ndim, kpad, padding, circ)


def _correlate(x, w, ndim, mode, kpad, padding, circ):
    if x.dtype != w.dtype:
        # convolution needs one dtype: promote the lower operand
        dtype = torch.promote_types(x.dtype, w.dtype)
        x, w = x.to(dtype), w.to(dtype)
    batch = x.shape[: x.ndim - ndim]
    x = (x.flatten(0, x.ndim - ndim - 1) if x.ndim > ndim else x[None]).unsqueeze(1)
    w = w[None, None]
    if mode == "zeros":
        if kpad is not None:
            w = F.pad(w, kpad)
        y = _CONV[ndim - 1](x, w, padding=padding)
    else:
        y = _CONV[ndim - 1](_circular_pad(x, circ, ndim), w)
    return y.reshape(batch + y.shape[2:])


def _circular_pad(x, pads, ndim):
    sizes = x.shape[-ndim:]
    # F.pad wraps at most once; pads can exceed the grid when the kernel is larger.
    if all(p <= sizes[ndim - 1 - k // 2] for k, p in enumerate(pads)):
        return F.pad(x, pads, mode="circular") if any(pads) else x
    for k in range(ndim):
        left, right = pads[2 * k], pads[2 * k + 1]
        axis = x.ndim - 1 - k
        n = x.shape[axis]
        idx = torch.arange(-left, n + right, device=x.device) % n
        x = x.index_select(axis, idx)
    return x


class Convolution(_Filter):
    """n-D convolution (n = 1, 2, 3) with a kernel centred at ``K // 2``.

    A true convolution (the kernel is flipped, unlike ``torch.nn.ConvNd``):
    ``y[i] = Σ_m kernel[m] x[i - m + K // 2]`` over the last ``kernel.ndim``
    axes of ``in_grid_shape``, with ``padding_mode`` ``"zeros"`` (samples
    outside the grid are zero) or ``"circular"`` (periodic). The output grid
    has the input's size ("same" convolution, torchlinops' convention). Grid
    dims before the last ``kernel.ndim`` are carried through like batch dims.
    Input ``batch_shape + in_grid_shape``, output ``batch_shape +
    out_grid_shape`` (default ``Nx Ny Nz`` and ``Nx1 Ny1 Nz1``).

    The adjoint is a :class:`Correlation` with the conjugate kernel; the
    normal is the composition (there is no cheaper closed form with zero
    padding).

    >>> import torch, funclinop as fl
    >>> A = fl.Convolution(torch.tensor([1.0, 2.0, 3.0]), in_grid_shape=("N",), out_grid_shape=("M",))
    >>> A(torch.tensor([0.0, 1.0, 0.0, 0.0]))
    tensor([1., 2., 3., 0.])
    >>> fl.Convolution(torch.tensor([1.0, 2.0, 3.0]), padding_mode="circular")(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    tensor([2., 3., 0., 1.])
    """

    _flip = True

    def adjoint(self):
        return self._adjoint_as(Correlation)


class Correlation(_Filter):
    """n-D cross-correlation (n = 1, 2, 3), the adjoint of :class:`Convolution`.

    ``y[i] = Σ_m kernel[m] x[i + m - K // 2]`` (no conjugation), same
    arguments, padding modes and size convention as :class:`Convolution`.
    ``Convolution(k).H`` is ``Correlation(conj(k))`` with input and output
    grid names swapped, and ``Correlation(k).H`` is ``Convolution(conj(k))``.

    >>> import torch, funclinop as fl
    >>> A = fl.Correlation(torch.tensor([1.0, 2.0, 3.0]))
    >>> A(torch.tensor([0.0, 1.0, 0.0, 0.0]))
    tensor([3., 2., 1., 0.])
    """

    def adjoint(self):
        return self._adjoint_as(Convolution)
