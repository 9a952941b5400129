"""Zero padding and cropping: centered over grid dims (Pad, Crop) and at the end of one dim (PadDim, Truncate)."""

import torch
import torch.nn.functional as F

from ..dims import ELLIPSIS, as_optional_shape, as_shape, fresh, named
from ..errors import ShapeError
from ..linop import Linop, derived, static
from ._util import check_slices, fixed_kind, int_tuple
from .fft import grid_names

__all__ = ["Pad", "Crop", "PadDim", "Truncate"]


# ---- centered windows -------------------------------------------------------
# The small grid sits inside the big one at an offset that keeps the centre
# (index n // 2, the origin of an fftshift-ed array) of both grids aligned:
# an odd total padding puts the extra zero on the left for an odd small size
# and on the right for an even one.


def _offsets(small, big):
    """(left, right) zeros around a ``small`` window centred in ``big``, per dim."""
    out = []
    for n, m in zip(small, big):
        total = m - n
        left = total // 2 + (total % 2) * (n % 2)
        out.append((left, total - left))
    return tuple(out)


def _torch_pad(offsets):
    """The ``F.pad`` argument (last dim first) for per-dim (left, right) widths."""
    return tuple(w for pair in reversed(offsets) for w in pair)


def _window_slices(offsets, big):
    """The slices selecting the small window out of the big grid."""
    return tuple(slice(left, m - right) for (left, right), m in zip(offsets, big))


def _grid_shapes(op, small_shape, big_shape, ndim):
    """Resolve the grid names: the small grid defaults to ``Nx...``, the big one to fresh names."""
    what = type(op).__name__
    if big_shape is not None:
        big_shape = as_shape(big_shape, f"{what} grid shape")
    if small_shape is None:
        small_shape = tuple(fresh(d, set(big_shape or ())) for d in grid_names(ndim, what=what))
    small_shape = as_shape(small_shape, f"{what} grid shape")
    if big_shape is None:
        big_shape = tuple(fresh(d, set(small_shape)) for d in small_shape)
    for g in (small_shape, big_shape):
        if len(g) != ndim or ELLIPSIS in g:
            raise ShapeError(f"{what}: grid shape {g} must name exactly {ndim} dims (one per size)")
    return small_shape, big_shape


def _check_sizes(what, small, big, small_is_input):
    if len(small) != len(big):
        raise ValueError(f"{what}: sizes {small} and {big} must have the same length")
    if not small:
        raise ValueError(f"{what}: needs at least one grid dim")
    if any(n > m for n, m in zip(small, big)):
        if small_is_input:
            raise ValueError(f"Pad: pad_im_size {big} must be at least im_size {small} in every dim")
        raise ValueError(f"Crop: crop_im_size {small} must be at most im_size {big} in every dim")


def _size_tuple(sizes, what):
    """Converter: grid sizes as a tuple of non-negative ints."""
    return int_tuple(sizes, what.replace(" ", ": ", 1), minimum=0)


class _CenteredWindow(Linop):
    """Shared layout of Pad and Crop: input grid of ``_isize``, output grid of ``_osize``."""

    # The fields in_shape, out_shape and batch_shape are declared by each
    # subclass, after its sizes, to keep torchlinops' positional order.
    ishape: tuple = derived()
    oshape: tuple = derived()
    _isize: tuple = derived()
    _osize: tuple = derived()
    _offsets: tuple = derived()
    # F.pad widths (Pad.apply, Crop.apply_adjoint) and the index of the small
    # window in the big grid (Crop.apply, Pad.apply_adjoint).
    _pad: tuple = derived()
    _window: tuple = derived()

    def _defaults(self):
        small, big, small_is_input = self._window_sizes()
        _check_sizes(type(self).__name__, small, big, small_is_input)
        if small_is_input:
            in_shape, out_shape = _grid_shapes(self, self.in_shape, self.out_shape, len(small))
        else:
            out_shape, in_shape = _grid_shapes(self, self.out_shape, self.in_shape, len(small))
        return {name: shape for name, shape in (("in_shape", in_shape), ("out_shape", out_shape))
                if getattr(self, name) is None}

    def _precompute(self):
        what, (small, big, small_is_input) = type(self).__name__, self._window_sizes()
        in_shape, out_shape = self.in_shape, self.out_shape
        if small_is_input:
            _grid_shapes(self, in_shape, out_shape, len(small))
        else:
            _grid_shapes(self, out_shape, in_shape, len(small))
        isize, osize = (small, big) if small_is_input else (big, small)
        for d, n in zip(in_shape, isize):
            if d in out_shape and osize[out_shape.index(d)] != n:
                raise ShapeError(
                    f"{what}: grid dim {d!r} would have size {n} on the input and "
                    f"{osize[out_shape.index(d)]} on the output; give it a new name in "
                    f"{'out_shape' if small_is_input else 'in_shape'}"
                )
        offsets = _offsets(small, big)
        return dict(
            ishape=as_shape(self.batch_shape + in_shape, f"{what} ishape"),
            oshape=as_shape(self.batch_shape + out_shape, f"{what} oshape"),
            _isize=isize, _osize=osize, _offsets=offsets, _pad=_torch_pad(offsets),
            _window=(Ellipsis, *_window_slices(offsets, big)),
        )

    def size(self, dim):
        if dim in self.in_shape:
            return self._isize[self.in_shape.index(dim)]
        if dim in self.out_shape:
            return self._osize[self.out_shape.index(dim)]
        return None

    def tile(self, slices):
        check_slices(self, slices, self.in_shape + self.out_shape,
                     "it is an image dim that the centered window spans")
        return self

    def split_kind(self, dim):
        return fixed_kind(self, dim, self.in_shape + self.out_shape)

    def split_refusal(self, dim):
        return "spans it with a centered window"


class Pad(_CenteredWindow):
    """Centered zero padding of the trailing grid dims from ``im_size`` to ``pad_im_size``.

    Maps ``(*batch_shape, *in_shape)`` (sizes ``im_size``) to
    ``(*batch_shape, *out_shape)`` (sizes ``pad_im_size``). The image keeps
    its centre (index ``n // 2``): an odd number of zeros puts the extra one
    on the left for an odd ``im_size`` and on the right for an even one, as
    in torchlinops. ``Pad.H`` is the matching :class:`Crop` and ``Pad.N``
    the identity.

    Parameters
    ----------
    pad_im_size : tuple of int
        Output (padded) grid sizes, each at least the matching ``im_size``.
    im_size : tuple of int
        Input grid sizes.
    in_shape : shape, optional
        Input grid dim names; default ``(Nx[, Ny[, Nz]])``.
    out_shape : shape, optional
        Output grid dim names; default a fresh name per input dim (``Nx1``...).
    batch_shape : shape, optional
        Named dims in front of the grid dims (default ``("...",)``).

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> P = fl.Pad((5,), (2,))
    >>> P.ishape, P.oshape
    (('...', 'Nx'), ('...', 'Nx1'))
    >>> P(torch.tensor([1.0, 2.0]))
    tensor([0., 1., 2., 0., 0.])
    >>> P.H(torch.arange(5.0))
    tensor([1., 2.])
    """

    pad_im_size: tuple = static(converter=_size_tuple)
    im_size: tuple = static(converter=_size_tuple)
    in_shape: tuple = static(default=None, converter=as_optional_shape)
    out_shape: tuple = static(default=None, converter=as_optional_shape)
    batch_shape: tuple = static(default=None, converter=as_shape)

    def _window_sizes(self):
        return self.im_size, self.pad_im_size, True

    def apply(self, x):
        return F.pad(x, self._pad)

    def apply_adjoint(self, y):
        return y[self._window]

    def adjoint(self):
        return Crop(self.im_size, self.pad_im_size, self.out_shape, self.in_shape, self.batch_shape)

    def normal(self):
        from .identity import Identity

        return Identity(self.ishape)


class Crop(_CenteredWindow):
    """Centered crop of the trailing grid dims from ``im_size`` to ``crop_im_size``.

    The adjoint of :class:`Pad`: maps ``(*batch_shape, *in_shape)`` (sizes
    ``im_size``) to ``(*batch_shape, *out_shape)`` (sizes
    ``crop_im_size``), keeping the window that ``Pad`` would fill.
    ``Crop.H`` is the matching :class:`Pad`; ``Crop.N`` is the crop followed
    by that pad (a 0/1 mask as a Diagonal would be a tensor, and a tensor
    would pin the leafless crop to one device).

    Parameters
    ----------
    crop_im_size : tuple of int
        Output (cropped) grid sizes, each at most the matching ``im_size``.
    im_size : tuple of int
        Input grid sizes.
    in_shape : shape, optional
        Input grid dim names; default a fresh name per output dim (``Nx1``...).
    out_shape : shape, optional
        Output grid dim names; default ``(Nx[, Ny[, Nz]])``.
    batch_shape : shape, optional
        Named dims in front of the grid dims (default ``("...",)``).

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> C = fl.Crop((2,), (5,), ("Kx",), ("Nx",))
    >>> C(torch.arange(5.0))
    tensor([1., 2.])
    >>> C.H == fl.Pad((5,), (2,), ("Nx",), ("Kx",))
    True
    >>> C.N(torch.ones(5))
    tensor([0., 1., 1., 0., 0.])
    """

    crop_im_size: tuple = static(converter=_size_tuple)
    im_size: tuple = static(converter=_size_tuple)
    in_shape: tuple = static(default=None, converter=as_optional_shape)
    out_shape: tuple = static(default=None, converter=as_optional_shape)
    batch_shape: tuple = static(default=None, converter=as_shape)

    def _window_sizes(self):
        return self.crop_im_size, self.im_size, False

    def apply(self, x):
        return x[self._window]

    def apply_adjoint(self, y):
        return F.pad(y, self._pad)

    def adjoint(self):
        return Pad(self.im_size, self.crop_im_size, self.out_shape, self.in_shape, self.batch_shape)



# ---- one dim, padded or truncated at its end ---------------------------------


class _EndWindow(Linop):
    """Shared layout of Truncate and PadDim: dim ``dim`` goes from ``from_length`` to ``to_length``."""

    dim: int = static()
    from_length: int = static()
    to_length: int = static()
    ishape: tuple = static(converter=as_shape)
    oshape: tuple = static(converter=as_shape)
    _axis: int = derived()
    # F.pad widths growing the dim, and the index keeping its first entries.
    _pad: tuple = derived()
    _index: tuple = derived()

    def _check(self):
        what = type(self).__name__
        for name in ("dim", "from_length", "to_length"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{what}: {name} must be an int, got {type(v).__name__}")
        for name in ("from_length", "to_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"{what}: {name} must be non-negative, got {getattr(self, name)}")
        ishape, oshape = self.ishape, self.oshape
        if len(ishape) != len(oshape) or (ishape[:1] == (ELLIPSIS,)) != (oshape[:1] == (ELLIPSIS,)):
            raise ShapeError(f"{what}: ishape {ishape} and oshape {oshape} must have the same layout")
        if not -len(ishape) <= self.dim < len(ishape) or ishape[self.dim] == ELLIPSIS:
            raise ValueError(f"{what}: dim={self.dim} does not index a named dim of ishape {ishape}")
        k = self.dim % len(ishape)
        if ishape[k] == oshape[k] and self.from_length != self.to_length:
            raise ShapeError(
                f"{what}: dim {ishape[k]!r} would have size {self.from_length} on the input and "
                f"{self.to_length} on the output; give it a new name in oshape"
            )

    def _precompute(self):
        axis = self.dim % len(self.ishape) - len(self.ishape)
        short, long = min(self.from_length, self.to_length), max(self.from_length, self.to_length)
        return dict(
            _axis=axis,
            _pad=(0, 0) * (-axis - 1) + (0, long - short),
            _index=(Ellipsis, slice(0, short)) + (slice(None),) * (-axis - 1),
        )

    @property
    def idim(self):
        return self.ishape[self._axis]

    @property
    def odim(self):
        return self.oshape[self._axis]

    def size(self, dim):
        if dim == self.idim:
            return self.from_length
        if dim == self.odim:
            return self.to_length
        return None

    def tile(self, slices):
        check_slices(self, slices, (self.idim, self.odim), "it is the padded/truncated dim")
        return self

    def split_kind(self, dim):
        return fixed_kind(self, dim, (self.idim, self.odim))

    def split_refusal(self, dim):
        return "pads or truncates it"


class Truncate(_EndWindow):
    """Keep the first ``to_length`` entries of dim ``dim`` (of ``from_length``).

    ``dim`` is the position of the truncated dim in ``ishape`` (``oshape``
    names it at the same position). The adjoint is :class:`PadDim`
    (zeros at the end); the normal is the truncation followed by that pad
    (no tensor: it runs on any device).

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> T = fl.Truncate(-1, 4, 2, ("B", "N"), ("B", "M"))
    >>> T(torch.arange(8.0).reshape(2, 4))
    tensor([[0., 1.],
            [4., 5.]])
    >>> T.H(torch.ones(2, 2))
    tensor([[1., 1., 0., 0.],
            [1., 1., 0., 0.]])
    """

    def _check(self):
        super()._check()
        if self.to_length > self.from_length:
            raise ValueError(
                f"Truncate: to_length must be in [0, {self.from_length}], got {self.to_length}"
            )

    def apply(self, x):
        return x[self._index]

    def apply_adjoint(self, y):
        return F.pad(y, self._pad)

    def adjoint(self):
        return PadDim(self.dim, self.to_length, self.from_length, self.oshape, self.ishape)



class PadDim(_EndWindow):
    """Append ``to_length - from_length`` zeros to dim ``dim`` (of ``from_length``).

    ``dim`` is the position of the padded dim in ``ishape``. The adjoint is
    :class:`Truncate`; the normal is the identity.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> P = fl.PadDim(0, 2, 4, ("N",), ("M",))
    >>> P(torch.tensor([1.0, 2.0]))
    tensor([1., 2., 0., 0.])
    """

    def _check(self):
        super()._check()
        if self.from_length > self.to_length:
            raise ValueError(
                f"PadDim: from_length must be in [0, {self.to_length}], got {self.from_length}"
            )

    def apply(self, x):
        return F.pad(x, self._pad)

    def apply_adjoint(self, y):
        return y[self._index]

    def adjoint(self):
        return Truncate(self.dim, self.to_length, self.from_length, self.oshape, self.ishape)

    def normal(self):
        from .identity import Identity

        return Identity(self.ishape)
