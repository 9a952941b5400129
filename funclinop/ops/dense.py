"""Dense: a named tensor contraction (einsum semantics over named dims)."""

import string

import torch
import torch.nn.functional as F

from ..dims import ELLIPSIS, Dim, as_optional_shape, fresh, named
from ..errors import ShapeError
from ..linop import Linop, SplitKind, derived, static
from ._util import check_tensor, dim_tuple

__all__ = ["Dense"]


def _labels(labels, what):
    return None if labels is None else tuple(labels)


class Dense(Linop):
    """y = W x as an einsum over named dims.

    Dims of ``ishape`` that are in ``weightshape`` but not in ``oshape`` are
    contracted; dims in both ``ishape`` and ``oshape`` are kept (batch,
    elementwise if the weight has them too); dims in ``weightshape`` and
    ``oshape`` only are new output dims. ``Dense(W)`` without names reads W as
    ``(..., M, N)``: ishape ``("...", N)``, oshape ``("...", M)``, with W's
    leading dims as batch dims shared by input and output.
    ``broadcast_dims`` names weight dims of size 1 that broadcast (and are
    never split). The contraction plan is fixed at construction; ``apply``
    runs one matmul, one multiply(-and-sum) or one einsum.

    The normal folds WᴴW into one Dense with the same input and output dims.

    >>> import torch, funclinop as fl
    >>> W = torch.randn(3, 7)
    >>> A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    >>> x = torch.randn(7)
    >>> torch.allclose(A(x), W @ x)
    True
    >>> maps = torch.randn(4, 8, 8, dtype=torch.complex64)
    >>> S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
    >>> S(torch.randn(8, 8, dtype=torch.complex64)).shape
    torch.Size([4, 8, 8])
    """

    weight: torch.Tensor
    weightshape: tuple = static(default=None, converter=as_optional_shape)
    ishape: tuple = static(default=None, converter=as_optional_shape)
    oshape: tuple = static(default=None, converter=as_optional_shape)
    broadcast_dims: tuple = static(default=(), converter=dim_tuple)
    # Einsum labels of the input/output axes when they differ from the dim
    # names (the folded normal maps dim N to N through weight axes N, N1).
    # The fields keep the argument (None: the dim names); the labels in use
    # are derived, so that dataclasses.replace renaming dims recomputes them.
    ilabels: tuple = static(default=None, kw_only=True, repr=False, converter=_labels)
    olabels: tuple = static(default=None, kw_only=True, repr=False, converter=_labels)
    _ilabels: tuple = derived()
    _olabels: tuple = derived()
    _plan: tuple = derived()
    _adjoint_plan: tuple = derived()

    def _defaults(self):
        # Without names, the shapes are read off the weight
        if self.weightshape is None and self.ishape is None and self.oshape is None:
            if isinstance(self.weight, torch.Tensor):
                return _infer_shapes(self.weight)
        return {}

    def _check(self):
        check_tensor(self, "weight", self.weight)
        if None in (self.weightshape, self.ishape, self.oshape):
            raise ValueError("Dense: give all of weightshape, ishape, oshape, or none of them")
        wshape, ishape, oshape = self.weightshape, self.ishape, self.oshape
        if ELLIPSIS in wshape:
            raise ValueError(f"Dense: weightshape {wshape} cannot contain '...'")
        if (ishape[:1] == (ELLIPSIS,)) != (oshape[:1] == (ELLIPSIS,)):
            raise ShapeError(f"{self._name()}: '...' must lead both ishape and oshape or neither")
        if self.weight.ndim != len(wshape):
            raise ShapeError(
                f"{self._name()}: weight of shape {tuple(self.weight.shape)} does not match "
                f"weightshape {wshape}"
            )
        for d in self.broadcast_dims:
            if d not in wshape:
                raise ValueError(f"{self._name()}: broadcast dim {d!r} is not in weightshape {wshape}")
            if self.weight.shape[wshape.index(d)] != 1:
                raise ShapeError(
                    f"{self._name()}: broadcast dim {d!r} must have size 1 in the weight, got "
                    f"{self.weight.shape[wshape.index(d)]} (weight shape {tuple(self.weight.shape)})"
                )

    def _precompute(self):
        wshape, ishape, oshape = self.weightshape, self.ishape, self.oshape
        xl = self.ilabels or named(ishape)
        yl = self.olabels or named(oshape)
        for what, labels, shape in (("ilabels", xl, ishape), ("olabels", yl, oshape)):
            if len(labels) != len(named(shape)):
                raise ShapeError(f"{self._name()}: {what} {labels} must have one label per named dim of {shape}")
        for d in xl:
            if d not in yl and d not in wshape:
                raise ShapeError(f"{self._name()}: input dim {d!r} is neither in oshape nor in weightshape")
        for d in yl:
            if d not in xl and d not in wshape:
                raise ShapeError(f"{self._name()}: output dim {d!r} is neither in ishape nor in weightshape")
        for d in wshape:
            if d not in xl and d not in yl:
                raise ShapeError(f"{self._name()}: weight dim {d!r} is neither in ishape nor in oshape")
        return dict(_ilabels=xl, _olabels=yl, _plan=_plan(xl, wshape, yl), _adjoint_plan=_plan(yl, wshape, xl))

    @classmethod
    def from_einstr(cls, weight, einstr, broadcast_dims=()):
        """A Dense from ``"weightshape,ishape->oshape"`` in compact dim strings.

        >>> import torch, funclinop as fl
        >>> fl.Dense.from_einstr(torch.randn(3, 7), "MN,N->M").oshape
        ('M',)
        """
        if not isinstance(einstr, str) or einstr.count(",") != 1 or einstr.count("->") != 1:
            raise ValueError(f"Dense.from_einstr: expected 'weightshape,ishape->oshape', got {einstr!r}")
        wshape, rest = einstr.replace(" ", "").split(",")
        ishape, oshape = rest.split("->")
        return cls(weight, Dim(wshape), Dim(ishape), Dim(oshape), broadcast_dims)

    def apply(self, x):
        return _run(self._plan, x, self.weight)

    def apply_adjoint(self, y):
        return _run(self._adjoint_plan, y, self.weight.conj())

    def adjoint(self):
        return self._derive(
            weight=self.weight.conj(), ishape=self.oshape, oshape=self.ishape,
            ilabels=self.olabels, olabels=self.ilabels, _ilabels=self._olabels, _olabels=self._ilabels,
            _plan=self._adjoint_plan, _adjoint_plan=self._plan,
        )

    def normal(self):
        xl, wl, yl = self._ilabels, self.weightshape, self._olabels
        contracted = [d for d in xl if d in wl and d not in yl]
        avoid = set(xl) | set(wl) | set(yl) | set(named(self.ishape)) | set(named(self.oshape))
        prime = {}
        for d in contracted:
            prime[d] = fresh(d, avoid)
            avoid.add(prime[d])
        diag = [d for d in xl if d in wl and d in yl]
        gl = tuple(diag + contracted + [prime[d] for d in contracted])
        wl_conj = tuple(prime.get(d, d) for d in wl)
        gram = _einsum((wl, wl_conj), gl, self.weight, self.weight.conj())
        return Dense(
            gram, gl, self.ishape, self.ishape,
            tuple(d for d in self.broadcast_dims if d in gl),
            ilabels=xl, olabels=tuple(prime.get(d, d) for d in xl),
        )

    def _axes(self, dim):
        """The weight axes that dim ``dim`` indexes."""
        labels = []
        if dim in self.ishape:
            labels.append(self._ilabels[named(self.ishape).index(dim)])
        if dim in self.oshape:
            labels.append(self._olabels[named(self.oshape).index(dim)])
        return [self.weightshape.index(l) for l in labels
                if l in self.weightshape and l not in self.broadcast_dims]

    def split_kind(self, dim):
        kind = super().split_kind(dim)
        if kind == SplitKind.DIAG:
            k, j = named(self.ishape).index(dim), named(self.oshape).index(dim)
            if self._ilabels[k] != self._olabels[j]:
                return None  # the folded normal maps dim N through N1: it mixes N
        return kind

    def size(self, dim):
        axes = self._axes(dim)
        return self.weight.shape[axes[0]] if axes else None

    def tile(self, slices):
        index = [slice(None)] * self.weight.ndim
        for d, s in slices.items():
            for axis in self._axes(d):
                index[axis] = s
        weight = self.weight[tuple(index)]
        return Dense(
            weight, self.weightshape, self.ishape, self.oshape, self.broadcast_dims,
            ilabels=self.ilabels, olabels=self.olabels,
        )


def _infer_shapes(weight):
    if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
        raise ShapeError("Dense: without names, weight must be a tensor with at least 2 dims (..., M, N)")
    batch = []
    for _ in range(weight.ndim - 2):
        batch.append(fresh("B", batch))
    batch = tuple(batch)
    return dict(
        weightshape=batch + ("M", "N"),
        ishape=(ELLIPSIS,) + batch + ("N",),
        oshape=(ELLIPSIS,) + batch + ("M",),
    )


# ---- contraction plans ----------------------------------------------------
# A plan is a static tuple ("linear" | "matmul" | "mul" | "einsum", args...),
# chosen once per operator so that apply is one or two tensor ops.


def _plan(xl, wl, yl):
    """The contraction plan for labels (a pure function of static tuples)."""
    contracted = [d for d in xl if d in wl and d not in yl]
    if len(wl) == 2 and xl and not set(wl) & set(xl[:-1]):
        if wl[1] == xl[-1] and wl[0] not in xl and yl == xl[:-1] + (wl[0],):
            return ("linear",)
        if wl[0] == xl[-1] and wl[1] not in xl and yl == xl[:-1] + (wl[1],):
            return ("matmul",)
    if not contracted:
        # Elementwise with broadcasting: one multiply in output order.
        return ("mul", _align(xl, yl, True), _align(wl, yl, False), (), None)
    if set(yl) <= set(xl):
        # A pure reduction (no reuse to exploit): multiply in input order,
        # sum the contracted axes (the product is no larger than the input).
        kept = tuple(d for d in xl if d not in contracted)
        axes = tuple(xl.index(d) - len(xl) for d in contracted)
        move = _align(kept, yl, True)[0]
        return ("mul", (None, None), _align(wl, xl, False), axes, move)
    return ("einsum", _equation(xl, wl, yl))


def _align(labels, order, ellipsis):
    """(movedim source, movedim destination, index) aligning axes to ``order``."""
    present = [d for d in order if d in labels]
    n = len(labels)
    src = tuple(labels.index(d) - n for d in present)
    dst = tuple(range(-len(present), 0))
    move = None if src == dst else (src, dst)
    index = [None if d not in labels else slice(None) for d in order]
    if not ellipsis:
        while index and index[0] is None:  # leading axes broadcast anyway
            index.pop(0)
    index = None if all(i is not None for i in index) else tuple(([...] if ellipsis else []) + index)
    return move, index


def _aligned(t, how):
    move, index = how
    if move is not None:
        t = t.movedim(*move)
    if index is not None:
        t = t[index]
    return t


def _equation(xl, wl, yl):
    letters = {}
    for d in xl + wl + yl:
        letters.setdefault(d, string.ascii_letters[len(letters)])
    sub = lambda labels: "".join(letters[d] for d in labels)
    return f"...{sub(xl)},{sub(wl)}->...{sub(yl)}"


def _run(plan, x, w):
    kind = plan[0]
    if kind == "mul":
        # torch promotes elementwise products itself (a 0-dim weight as a scalar)
        y = _aligned(x, plan[1]) * _aligned(w, plan[2])
        if plan[3]:
            y = y.sum(plan[3])
        return y if plan[4] is None else y.movedim(*plan[4])
    if x.dtype != w.dtype:
        # matmul and einsum need one dtype: promote the lower operand
        dtype = torch.promote_types(x.dtype, w.dtype)
        x, w = x.to(dtype), w.to(dtype)
    if kind == "linear":
        return F.linear(x, w)
    if kind == "matmul":
        return torch.matmul(x, w)
    return torch.einsum(plan[1], x, w)


def _einsum(in_labels, out_labels, *tensors):
    letters = {}
    for labels in in_labels + (out_labels,):
        for d in labels:
            letters.setdefault(d, string.ascii_letters[len(letters)])
    sub = lambda labels: "".join(letters[d] for d in labels)
    eq = ",".join(sub(l) for l in in_labels) + "->" + sub(out_labels)
    return torch.einsum(eq, *tensors)
