"""FunctionLinop: a user's pure function as an operator."""

from collections.abc import Callable
from typing import Any


from ..dims import as_shape, sorted_sizes
from ..linop import Linop, static

__all__ = ["FunctionLinop"]


class FunctionLinop(Linop):
    """The operator ``x -> fn(params, x)`` for a pure, linear ``fn``.

    ``params`` is a pytree of tensors (the operator's leaves, so
    ``torch.func.grad`` reaches them). Without ``adjoint_fn`` the adjoint is
    the vjp of ``fn``, exact for C-linear maps; it needs the input size of
    every input dim not in ``oshape``, given in ``sizes``.

    >>> import torch, funclinop as fl
    >>> w = torch.tensor([1.0, 2.0])
    >>> A = fl.FunctionLinop(lambda p, x: p * x, w, ishape=("N",), oshape=("N",))
    >>> A(torch.ones(2)), A.H(torch.ones(2))
    (tensor([1., 2.]), tensor([1., 2.]))
    """

    fn: Callable = static()
    params: object = None
    adjoint_fn: Callable = static(default=None, kw_only=True)
    ishape: tuple = static(default=None, kw_only=True, converter=as_shape)
    oshape: tuple = static(default=None, kw_only=True, converter=as_shape)
    sizes: Any = static(default=(), kw_only=True, converter=lambda s, what: sorted_sizes(dict(s) if s else {}))

    def _check(self):
        if not callable(self.fn):
            raise TypeError(f"FunctionLinop: fn must be callable, got {type(self.fn).__name__}")
        if self.adjoint_fn is not None and not callable(self.adjoint_fn):
            raise TypeError("FunctionLinop: adjoint_fn must be callable")
        for d, _ in self.sizes:
            if d not in self.dims:
                raise ValueError(f"{self._name()}: sizes names dim {d!r}, which is not in its shapes")

    def apply(self, x):
        return self.fn(self.params, x)

    def apply_adjoint(self, y):
        if self.adjoint_fn is not None:
            return self.adjoint_fn(self.params, y)
        return super().apply_adjoint(y)

    def adjoint(self):
        if self.adjoint_fn is None:
            return super().adjoint()
        return FunctionLinop(
            self.adjoint_fn, self.params, adjoint_fn=self.fn,
            ishape=self.oshape, oshape=self.ishape, sizes=self.sizes,
        )

    def size(self, dim):
        return dict(self.sizes).get(dim)
