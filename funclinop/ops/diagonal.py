"""Elementwise operators: Diagonal and Scalar."""

import torch

from ..dims import ELLIPSIS, as_shape, named
from ..errors import ShapeError
from ..linop import Linop, SameShape, field, static
from ._util import check_tensor, dim_tuple, slice_axes

__all__ = ["Diagonal", "Scalar"]


class Diagonal(SameShape, Linop):
    """Elementwise multiplication, y = w ⊙ x.

    ``weight`` is aligned with the trailing dims of ``ioshape`` (torch
    broadcasting); leading dims of ``ioshape`` that the weight lacks, and any
    dim in ``broadcast_dims`` (where the weight has size 1), are broadcast.
    The adjoint multiplies by conj(w), the normal by |w|².

    >>> import torch, funclinop as fl
    >>> D = fl.Diagonal(torch.tensor([1.0, 2.0, 3.0]), ioshape=("N",))
    >>> D(torch.ones(3))
    tensor([1., 2., 3.])
    >>> D.N.weight
    tensor([1., 4., 9.])
    """

    weight: torch.Tensor
    ioshape: tuple = static(default=None, converter=as_shape)
    broadcast_dims: tuple = static(default=(), converter=dim_tuple)

    def _check(self):
        check_tensor(self, "weight", self.weight)
        ioshape, broadcast = self.ioshape, self.broadcast_dims
        if self.weight.ndim > len(named(ioshape)) and ioshape[:1] != (ELLIPSIS,):
            raise ValueError(
                f"Diagonal: weight of shape {tuple(self.weight.shape)} has more dims "
                f"than ioshape {ioshape}"
            )
        for d in broadcast:
            if d not in named(ioshape):
                raise ValueError(f"Diagonal{ioshape}: broadcast dim {d!r} is not in ioshape")
            axis = named(ioshape).index(d) - len(named(ioshape))
            if -axis <= self.weight.ndim and self.weight.shape[axis] != 1:
                raise ShapeError(
                    f"Diagonal{ioshape}: broadcast dim {d!r} must have size 1 in the weight, got "
                    f"{self.weight.shape[axis]} (weight shape {tuple(self.weight.shape)})"
                )

    def apply(self, x):
        return x * self.weight

    def apply_adjoint(self, y):
        return y * self.weight.conj()

    def adjoint(self):
        if not self.weight.is_complex():
            return self
        return self._derive(weight=self.weight.conj())

    def normal(self):
        return Diagonal(_abs2(self.weight), self.ioshape, self.broadcast_dims)

    def _weight_axes(self):
        """{dim: weight axis} for the dims the weight indexes."""
        names = named(self.ioshape)
        k = len(names) - self.weight.ndim
        return {d: i - k for i, d in enumerate(names) if i >= k and d not in self.broadcast_dims}

    def size(self, dim):
        axis = self._weight_axes().get(dim)
        return None if axis is None else self.weight.shape[axis]

    def tile(self, slices):
        weight = slice_axes(self.weight, self._weight_axes(), slices)
        return Diagonal(weight, self.ioshape, self.broadcast_dims)


class Scalar(SameShape, Linop):
    """Multiplication by a scalar, y = c x (``c * A`` builds one).

    The weight is a 0-dim tensor. A Python number is stored in double
    precision (float64, or complex128 for a complex one), so it never lowers
    the precision of the data it scales; as a 0-dim leaf it never raises it
    either: the output keeps the input's precision, and a complex weight
    makes a real input complex (torch's rule for Python scalars).

    >>> import torch, funclinop as fl
    >>> fl.Scalar(3.0)(torch.ones(2))
    tensor([3., 3.])
    >>> fl.Scalar(0.1).weight.dtype, fl.Scalar(0.1)(torch.ones(1)).dtype
    (torch.float64, torch.float32)
    >>> fl.Scalar(2j)(torch.ones(1, dtype=torch.float64)).dtype
    torch.complex128
    """

    weight: torch.Tensor = field(converter=lambda c, what: python_scalar(c) if _is_number(c) else c)
    ioshape: tuple = static(default=None, converter=as_shape)

    def _check(self):
        check_tensor(self, "weight", self.weight)
        if self.weight.ndim != 0:
            raise ValueError(f"Scalar: weight must be 0-dim, got shape {tuple(self.weight.shape)}")

    def apply(self, x):
        return x * self.weight

    def apply_adjoint(self, y):
        return y * self.weight.conj()

    def adjoint(self):
        if not self.weight.is_complex():
            return self
        return self._derive(weight=self.weight.conj())

    def normal(self):
        return Scalar(_abs2(self.weight), self.ioshape)

    def tile(self, slices):
        return self


def _is_number(c):
    return isinstance(c, (int, float, complex)) and not isinstance(c, bool)


def python_scalar(c):
    """A Python number as a 0-dim tensor in double precision (no precision lost)."""
    return torch.tensor(c, dtype=torch.complex128 if isinstance(c, complex) else torch.float64)


def _abs2(w):
    return w.abs().square() if w.is_complex() else w.square()
