"""The generic adjoint wrapper, for operators without a closed-form adjoint."""

from ..linop import Linop, SplitKind

__all__ = ["Adjoint"]


class Adjoint(Linop):
    """Aᴴ of an operator that has no adjoint of its own type.

    ``Adjoint(A).H`` gives back ``A`` itself.

    >>> import torch, funclinop as fl
    >>> A = fl.FunctionLinop(lambda p, x: 2 * x, ishape=("N",), oshape=("N",), sizes={"N": 3})
    >>> A.H(torch.ones(3))
    tensor([2., 2., 2.])
    """

    linop: Linop

    def _check(self):
        if not isinstance(self.linop, Linop):
            raise TypeError(f"Adjoint: expected a Linop, got {type(self.linop).__name__}")

    @property
    def ishape(self):
        return self.linop.oshape

    @property
    def oshape(self):
        return self.linop.ishape

    def apply(self, x):
        return self.linop.apply_adjoint(x)

    def apply_adjoint(self, y):
        return self.linop.apply(y)

    def adjoint(self):
        return self.linop

    def normal(self):
        from ..compose import Chain

        return Chain(self, self.linop)

    def tile(self, slices):
        return Adjoint(self.linop.tile(slices))

    def size(self, dim):
        return self.linop.size(dim)

    def split_kind(self, dim):
        kind = self.linop.split_kind(dim)
        return None if kind is None else SplitKind(kind).reversed()

    def _device_flow(self, parts):
        (i, o), = parts  # the adjoint takes the input where linop's output goes
        return (i, None) if o is None else (o, i)
