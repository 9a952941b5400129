"""Sampling: gather a grid at integer indices; the adjoint scatter-adds."""

import math

import torch

from ..dims import ELLIPSIS, as_optional_shape, as_shape, fresh
from ..errors import ShapeError
from ..linop import Linop, derived, field, static
from ._util import check_slices, fixed_kind, int_tuple
from .fft import grid_names

__all__ = ["Sampling"]


class Sampling(Linop):
    """Sample the trailing grid dims at integer locations: ``y[..., m] = x[..., idx[0][m], idx[1][m], ...]``.

    Maps ``(*batch_shape, *input_shape)`` (sizes ``input_size``) to
    ``(*batch_shape, *output_shape)`` (the shape of the index tensors). The
    adjoint scatters back onto a zero grid, adding the samples that share a
    location; the normal is a :class:`Diagonal` holding how often each grid
    point is sampled (an integer weight, so it keeps the input's dtype).
    All of them (and ``tile``) compute with ``flat_idx``, the row-major index
    derived from ``idx`` at construction (``idx[0]`` itself for one grid dim),
    never with ``idx`` again.

    Parameters
    ----------
    idx : tuple of integer tensors
        One index tensor per grid dim, broadcast to a common shape ``M...``;
        every entry of ``idx[d]`` must lie in ``[0, input_size[d])``.
    input_size : tuple of int
        Sizes of the sampled grid.
    output_shape : shape, optional
        Names of the sample dims ``M...``; default ``("M",)`` for 1-D
        indices (``("M", "M1", ...)`` for more).
    input_shape : shape, optional
        Names of the grid dims; default ``(Nx[, Ny[, Nz]])``.
    batch_shape : shape, optional
        Named dims in front (default ``("...",)``).

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> S = fl.Sampling((torch.tensor([0, 2, 2]),), (4,))
    >>> S.ishape, S.oshape
    (('...', 'Nx'), ('...', 'M'))
    >>> S(torch.tensor([10.0, 11.0, 12.0, 13.0]))
    tensor([10., 12., 12.])
    >>> S.H(torch.ones(3))
    tensor([1., 0., 2., 0.])
    >>> S.N.weight
    tensor([1, 0, 2, 0])
    >>> M = fl.Sampling.from_mask(torch.tensor([[True, False], [False, True]]))
    >>> M(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    tensor([1., 4.])
    """

    idx: tuple = field(repr=False, converter=lambda idx, what: _index_tensors(idx))
    input_size: tuple = static(converter=lambda size, what: _grid_size(size))
    output_shape: tuple = static(default=None, converter=as_optional_shape)
    input_shape: tuple = static(default=None, converter=as_optional_shape)
    batch_shape: tuple = static(default=None, converter=as_shape)
    # Row-major linear index into the flattened grid, same shape as each
    # idx[d]: a leaf next to idx so stacking, moving and slicing keep them together.
    # apply, adjoint, normal and tile all use it, never idx.
    flat_idx: torch.Tensor = derived(static=False)
    ishape: tuple = derived()
    oshape: tuple = derived()

    def _defaults(self):
        names = {}
        if self.input_shape is None:
            names["input_shape"] = grid_names(len(self.input_size), what="Sampling")
        if self.output_shape is None:
            avoid = set(names.get("input_shape", self.input_shape))
            names["output_shape"] = _sample_names(self.idx[0].ndim if self.idx else 0, avoid)
        return names

    def _check(self):
        idx, size = self.idx, self.input_size
        if len(idx) != len(size):
            raise ShapeError(
                f"Sampling: input_size {size} has {len(size)} dims but idx has {len(idx)} index tensors"
            )
        input_shape, output_shape = self.input_shape, self.output_shape
        if len(input_shape) != len(size) or ELLIPSIS in input_shape:
            raise ShapeError(f"Sampling: input_shape {input_shape} must name the {len(size)} grid dims of {size}")
        shape = idx[0].shape
        if len(output_shape) != len(shape) or ELLIPSIS in output_shape:
            raise ShapeError(
                f"Sampling: output_shape {output_shape} must name the {len(shape)} dims "
                f"of the index tensors (shape {tuple(shape)})"
            )
        if set(input_shape) & set(output_shape):
            raise ShapeError(
                f"Sampling: input_shape {input_shape} and output_shape {output_shape} share dim names"
            )
        _check_range(idx, size, input_shape)

    def _precompute(self):
        batch = self.batch_shape
        return dict(
            ishape=as_shape(batch + self.input_shape, "Sampling ishape"),
            oshape=as_shape(batch + self.output_shape, "Sampling oshape"),
            flat_idx=_ravel(self.idx, self.input_size),
        )

    @classmethod
    def from_mask(cls, mask, input_size=None, output_shape=None, input_shape=None, batch_shape=None):
        """Sample the grid points where ``mask`` is nonzero, in row-major order.

        ``input_size`` defaults to ``mask.shape`` and must equal it if given.

        >>> import torch, funclinop as fl
        >>> S = fl.Sampling.from_mask(torch.tensor([0, 1, 1, 0]))
        >>> S.idx
        (tensor([1, 2]),)
        """
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"Sampling.from_mask: mask must be a torch.Tensor, got {type(mask).__name__}")
        if input_size is not None and tuple(input_size) != tuple(mask.shape):
            raise ShapeError(f"Sampling.from_mask: mask of shape {tuple(mask.shape)} does not match input_size {tuple(input_size)}")
        idx = torch.nonzero(mask.bool(), as_tuple=True)
        return cls(idx, tuple(mask.shape), output_shape, input_shape, batch_shape)

    @property
    def locs(self):
        """The indices stacked along a last dim, shape ``(*M, D)``."""
        return torch.stack(self.idx, dim=-1)

    def apply(self, x):
        # one gather: advanced indexing puts the sample dims in place
        return x.flatten(-len(self.input_size))[..., self.flat_idx]

    def apply_adjoint(self, y):
        flat = self.flat_idx.reshape(-1)
        batch = y.shape[: y.ndim - self.flat_idx.ndim]
        zeros = y.new_zeros(batch + (math.prod(self.input_size),))
        # the sample count, not -1: an empty batch leaves -1 undetermined
        x = zeros.index_add(-1, flat, y.reshape(batch + flat.shape))
        return x.reshape(batch + self.input_size)

    def normal(self):
        from .diagonal import Diagonal

        flat = self.flat_idx.reshape(-1)
        counts = torch.zeros(math.prod(self.input_size), dtype=torch.int64, device=flat.device)
        counts = counts.index_add(0, flat, torch.ones_like(flat))
        return Diagonal(counts.reshape(self.input_size), self.ishape)

    def size(self, dim):
        if dim in self.input_shape:
            return self.input_size[self.input_shape.index(dim)]
        if dim in self.output_shape:
            return self.flat_idx.shape[self.output_shape.index(dim)]
        return None

    def split_kind(self, dim):
        return fixed_kind(self, dim, self.input_shape)

    def split_refusal(self, dim):
        return "samples it (split the sample dims instead)"

    def tile(self, slices):
        check_slices(self, slices, self.input_shape, "it is a sampled grid dim (split the sample dims instead)")
        index = tuple(slices.get(d, slice(None)) for d in self.output_shape)
        if all(s == slice(None) for s in index):
            return self
        # Slice flat_idx, which apply, adjoint and normal use, rather than
        # ravel the sliced idx again: the tile computes what this operator does.
        flat_idx = self.flat_idx[index].contiguous()
        return self._derive(idx=tuple(t[index] for t in self.idx), flat_idx=flat_idx)


def _index_tensors(idx):
    if isinstance(idx, torch.Tensor):
        raise TypeError(
            "Sampling: idx must be a tuple of integer tensors, one per grid dim, got a single tensor "
            "(for indices stacked along a last dim use tuple(idx.unbind(-1)))"
        )
    if not isinstance(idx, (tuple, list)):
        raise TypeError(f"Sampling: idx must be a tuple of integer tensors, got {type(idx).__name__}")
    for d, t in enumerate(idx):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"Sampling: idx[{d}] must be a torch.Tensor, got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"Sampling: idx[{d}] must be an integer tensor, got {t.dtype}")
    idx = tuple(t.long() for t in idx)
    try:
        shape = torch.broadcast_shapes(*(t.shape for t in idx))
    except RuntimeError:
        raise ShapeError(
            f"Sampling: index tensors of shapes {[tuple(t.shape) for t in idx]} do not broadcast"
        ) from None
    return tuple(t if t.shape == shape else t.expand(shape).contiguous() for t in idx)


def _grid_size(size):
    size = int_tuple(size, "Sampling: input_size")
    if not size:
        raise ValueError("Sampling: input_size needs at least one grid dim")
    return size


def _sample_names(n, avoid):
    names = []
    for _ in range(n):
        names.append(fresh("M", set(avoid) | set(names)))
    return tuple(names)


def _check_range(idx, size, names):
    for d, (t, n) in enumerate(zip(idx, size)):
        if t.numel() == 0:
            continue
        lo, hi = int(t.min()), int(t.max())
        bad = lo if lo < 0 else hi if hi >= n else None
        if bad is not None:
            raise ValueError(
                f"Sampling: idx[{d}] for grid dim {names[d]!r} has value {bad}, "
                f"outside [0, {n - 1}] (size {n})"
            )


def _ravel(idx, size):
    """Row-major linear indices of ``idx`` into a grid of ``size``."""
    flat = idx[0]
    for t, n in zip(idx[1:], size[1:]):
        flat = flat * n + t
    return flat.contiguous()
