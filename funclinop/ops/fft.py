"""FFT: the orthonormal n-D discrete Fourier transform over named grid dims."""

import torch

from ..dims import ELLIPSIS, as_shape
from ..errors import ShapeError
from ..linop import Linop, derived, static
from ._util import check_slices, fixed_kind

__all__ = ["FFT", "grid_names"]


def grid_names(ndim, kspace=False, what="FFT"):
    """Default grid dim names: ``("Nx", "Ny", "Nz")[:ndim]`` (``K...`` in k-space)."""
    if not 1 <= ndim <= 3:
        raise ValueError(
            f"{what}: default grid dim names exist for 1 to 3 dims, got {ndim}; "
            f"name the dims explicitly"
        )
    return tuple(("K" if kspace else "N") + a for a in "xyz"[:ndim])


def _grid_pair(grids, what):
    """Converter: None (the default grids) or a pair of shapes."""
    if grids is None:
        return None
    if isinstance(grids, str) or len(grids) != 2:
        raise ValueError(f"FFT: grid_shapes must be a pair (input dims, output dims), got {grids!r}")
    return as_shape(grids[0], "FFT grid_shapes[0]"), as_shape(grids[1], "FFT grid_shapes[1]")


class FFT(Linop):
    """The orthonormal ``ndim``-dimensional FFT over the trailing grid dims.

    Maps ``(*batch_shape, *grid_shapes[0])`` to ``(*batch_shape,
    *grid_shapes[1])``; by default ``(..., Nx, Ny) -> (..., Kx, Ky)``. The
    transform uses ``norm="ortho"``, so the adjoint is the inverse transform
    and the normal is the identity.

    Parameters
    ----------
    ndim : int
        Number of trailing dims to transform.
    batch_shape : shape, optional
        Named dims in front of the grid dims (default ``("...",)``).
    grid_shapes : (shape, shape), optional
        Names of the input (image) and output (k-space) grid dims, each of
        length ``ndim``. Default ``(Nx[, Ny[, Nz]])`` and ``(Kx[, Ky[, Kz]])``.
    centered : bool, default False
        Put the origin at index ``N // 2`` on both sides (``ifftshift``,
        FFT, ``fftshift``), the sigpy convention.
    inverse : bool, default False (keyword only)
        The inverse transform; ``FFT(...).H`` is the same grid with
        ``inverse=True`` and the two grid shapes swapped.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> F = fl.FFT(2)
    >>> F.ishape, F.oshape
    (('...', 'Nx', 'Ny'), ('...', 'Kx', 'Ky'))
    >>> x = torch.randn(3, 4, 5, dtype=torch.complex64)
    >>> torch.allclose(F(x), torch.fft.fftn(x, dim=(-2, -1), norm="ortho"))
    True
    >>> torch.allclose(F.H(F(x)), x, atol=1e-6)
    True
    >>> F.N
    Identity((..., Nx, Ny) -> (..., Nx, Ny))
    """

    ndim: int = static()
    batch_shape: tuple = static(default=None, converter=as_shape)
    grid_shapes: tuple = static(default=None, converter=_grid_pair)
    centered: bool = static(default=False)
    inverse: bool = static(default=False, kw_only=True)
    ishape: tuple = derived()
    oshape: tuple = derived()
    _grids: tuple = derived()  # (input grid, output grid), the defaults resolved
    _axes: tuple = derived()

    def _check(self):
        ndim = self.ndim
        if isinstance(ndim, bool) or not isinstance(ndim, int):
            raise TypeError(f"FFT: ndim must be an int, got {type(ndim).__name__}")
        if ndim < 1:
            raise ValueError(f"FFT: ndim must be at least 1, got {ndim}")
        if not isinstance(self.centered, bool) or not isinstance(self.inverse, bool):
            raise TypeError("FFT: centered and inverse must be bools")

    def _precompute(self):
        ndim, grids = self.ndim, self.grid_shapes
        if grids is None:
            grids = (grid_names(ndim), grid_names(ndim, kspace=True))
            if self.inverse:
                grids = grids[::-1]
        for g in grids:
            if len(g) != ndim or ELLIPSIS in g:
                raise ShapeError(f"FFT: grid shape {g} must name exactly ndim={ndim} dims")
        return dict(
            ishape=as_shape(self.batch_shape + grids[0], "FFT ishape"),
            oshape=as_shape(self.batch_shape + grids[1], "FFT oshape"),
            _grids=grids, _axes=tuple(range(-ndim, 0)),
        )

    def apply(self, x):
        return self._transform(x, self.inverse)

    def apply_adjoint(self, y):
        return self._transform(y, not self.inverse)

    def _transform(self, x, inverse):
        if x.numel() == 0:  # MKL refuses a transform with no data (an empty batch)
            return x.to(x.dtype if x.is_complex() else x.dtype.to_complex())
        transform = torch.fft.ifftn if inverse else torch.fft.fftn
        if not self.centered:
            return transform(x, dim=self._axes, norm="ortho")
        x = torch.fft.ifftshift(x, dim=self._axes)
        x = transform(x, dim=self._axes, norm="ortho")
        return torch.fft.fftshift(x, dim=self._axes)

    def adjoint(self):
        # default grids follow `inverse`: they stay defaults
        grids = None if self.grid_shapes is None else self.grid_shapes[::-1]
        return FFT(self.ndim, self.batch_shape, grids, self.centered, inverse=not self.inverse)

    def normal(self):
        from .identity import Identity

        return Identity(self.ishape)

    def tile(self, slices):
        grid = set(self._grids[0]) | set(self._grids[1])
        check_slices(self, slices, sorted(grid), "the FFT mixes every entry of its grid dims")
        return self

    def split_kind(self, dim):
        return fixed_kind(self, dim, self._grids[0] + self._grids[1])

    def split_refusal(self, dim):
        return "mixes every entry of its grid dims"

    def _name(self):
        return ("IFFT" if self.inverse else "FFT") + super()._name()[len("FFT"):]
