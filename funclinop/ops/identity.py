"""Identity and Zero."""

import torch

from ..dims import as_optional_shape, as_shape, named
from ..errors import ShapeError
from ..linop import Linop, SplitKind, static

__all__ = ["Identity", "Zero"]


def _positional_kind(op, dim):
    """Entry k of the input becomes entry k of the output, dim by dim in order:
    a dim that keeps its name is block-diagonal, a renamed one cannot be split
    (a tile along the input name would have to place its output along the
    other name)."""
    inames, onames = named(op.ishape), named(op.oshape)
    if dim not in inames and dim not in onames:
        return SplitKind.ABSENT
    pairs = zip(inames, onames)
    return SplitKind.DIAG if (dim, dim) in pairs else None


def _positional_refusal(op, dim):
    if dim in named(op.ishape) and dim in named(op.oshape):
        return "moves it to another position"
    return "renames it (input and output name the same entries differently)"


def _check_layout(op):
    ishape, oshape = op.ishape, op.oshape
    if len(ishape) != len(oshape) or (ishape[:1] == ("...",)) != (oshape[:1] == ("...",)):
        raise ShapeError(f"{type(op).__name__}: ishape {ishape} and oshape {oshape} must have the same layout")


class Identity(Linop):
    """y = x. With an ``oshape`` it renames dims (same sizes, same order).

    >>> import torch, funclinop as fl
    >>> fl.Identity(("N",))(torch.ones(2))
    tensor([1., 1.])
    """

    ishape: tuple = static(default=("...",), converter=as_shape)
    oshape: tuple = static(default=None, converter=as_optional_shape)

    def _defaults(self):
        return {"oshape": self.ishape} if self.oshape is None else {}

    def _check(self):
        _check_layout(self)

    def apply(self, x):
        return x

    def apply_adjoint(self, y):
        return y

    def adjoint(self):
        return self if self.ishape == self.oshape else Identity(self.oshape, self.ishape)

    def normal(self):
        return Identity(self.ishape)

    def tile(self, slices):
        return self

    def split_kind(self, dim):
        return _positional_kind(self, dim)

    def split_refusal(self, dim):
        return _positional_refusal(self, dim)


class Zero(Linop):
    """y = 0 (the same shape as x).

    >>> import torch, funclinop as fl
    >>> fl.Zero(("N",))(torch.ones(2))
    tensor([0., 0.])
    """

    ishape: tuple = static(default=("...",), converter=as_shape)
    oshape: tuple = static(default=None, converter=as_optional_shape)

    def _defaults(self):
        return {"oshape": self.ishape} if self.oshape is None else {}

    def _check(self):
        _check_layout(self)

    def apply(self, x):
        return torch.zeros_like(x)

    def apply_adjoint(self, y):
        return torch.zeros_like(y)

    def adjoint(self):
        return Zero(self.oshape, self.ishape)

    def normal(self):
        return Zero(self.ishape)

    def tile(self, slices):
        return self

    def split_kind(self, dim):
        return _positional_kind(self, dim)

    def split_refusal(self, dim):
        return _positional_refusal(self, dim)
