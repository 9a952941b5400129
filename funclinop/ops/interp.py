"""Interpolate: a grid read off at real-valued locations through a small kernel.

The kernels (Kaiser–Bessel and a tent, "spline"), their exact Fourier
transforms (the NUFFT's apodisation), the min-max interpolator and the
stencil builder live here too;
:class:`Interpolate` itself holds only the stencil: integer grid indices and
their weights, one per kernel tap, computed once at construction.
"""

import functools
import math
import typing

import numpy as np
import torch

from ..dims import ELLIPSIS, as_shape, fresh, named
from ..errors import ShapeError
from ..linop import Linop, derived, static
from . import _bag
from ._util import check_slices, fixed_kind, int_tuple
from .fft import grid_names

__all__ = ["Interpolate", "kaiser_bessel_beta", "kernel", "kernel_transform", "minmax_weights", "KERNELS",
           "PAD_MODES"]

KERNELS = ("kaiser_bessel", "spline", "minmax")
PAD_MODES = ("circular", "zero")


# ---- kernels ----------------------------------------------------------------
# phi(d) for a distance d in grid points, zero for |d| >= width / 2.


def kaiser_bessel_beta(width, oversamp):
    """Beatty et al. (2005)'s Kaiser–Bessel shape for a kernel ``width`` and grid ``oversamp``.

    >>> round(kaiser_bessel_beta(4, 1.25), 4)
    6.9967
    """
    return math.pi * math.sqrt(max((width / oversamp * (oversamp - 0.5)) ** 2 - 0.8, 1e-12))


def kernel(d, width, name="kaiser_bessel", beta=None):
    """The interpolation kernel at distances ``d`` (a real tensor, grid units).

    Kaiser–Bessel: ``I0(β √(1 − (2d/width)²))``; "spline": the tent
    ``max(1 − |2d/width|, 0)``.

    >>> d = torch.tensor([0.0, 1.0, 2.0])
    >>> kernel(d, 4, "spline")
    tensor([1.0000, 0.5000, 0.0000])
    """
    x2 = (2 * d / width).square()
    inside = x2 < 1
    if name == "spline":
        return torch.where(inside, 1 - x2.sqrt().clamp(max=1), torch.zeros_like(d))
    # sqrt of 1 outside: its gradient there would be infinite, and masked to NaN
    s = beta * torch.where(inside, 1 - x2, torch.ones_like(x2)).sqrt()
    return torch.where(inside, torch.special.i0(s), torch.zeros_like(d))


def kernel_transform(xi, width, name="kaiser_bessel", beta=None):
    """The exact Fourier transform ∫ φ(u) e^(−2πiuξ) du of :func:`kernel` at frequencies ``xi``.

    >>> xi = torch.tensor([0.0, 0.1], dtype=torch.float64)
    >>> u = torch.linspace(-2, 2, 40001, dtype=torch.float64)
    >>> phi = kernel(u, 4, "kaiser_bessel", 7.0)
    >>> numeric = torch.trapezoid(phi * torch.cos(2 * torch.pi * u * xi[:, None]), u)
    >>> torch.allclose(kernel_transform(xi, 4, "kaiser_bessel", 7.0), numeric, rtol=1e-5)
    True
    """
    if name == "spline":
        a = width / 2
        return a * torch.sinc(a * xi).square()
    z2 = beta**2 - (math.pi * width * xi).square()
    z = z2.abs().sqrt()
    # sinh(z)/z where z² > 0, sin(|z|)/|z| where z² < 0, 1 at z = 0
    small = z < 1e-6
    zs = torch.where(small, torch.ones_like(z), z)
    ratio = torch.where(z2 >= 0, torch.sinh(zs) / zs, torch.sin(zs) / zs)
    return width * torch.where(small, torch.ones_like(z), ratio)


# ---- min-max interpolation --------------------------------------------------
# Fessler & Sutton (2003). A NUFFT divides the image by s_n (at the image's
# frequencies ν_n = n / G on a grid G) and interpolates with weights c_j at
# distances d_j from the taps; the error at frequency n is
#     s_n Σ_j c_j e^(2πi d_j ν_n) − 1,
# and its mean square over n is the squared relative L2 error for a white
# image. The c minimising it solve M c = b with
#     M_jk = Σ_n s_n² cos 2π(d_j − d_k)ν_n,   b_j = h(d_j) = Σ_n s_n cos 2πd_jν_n.
# d_j − d_k is an integer (a tap offset), so M is one small matrix per size;
# h is smooth, so a Chebyshev series evaluates it in O(1) per tap. No
# interpolator with these taps is more accurate for that apodisation, whose
# Kaiser–Bessel shape β is itself tuned (over a scan) for the least error.


class MinMaxTable(typing.NamedTuple):
    """The Kaiser–Bessel shape of the apodisation, the Chebyshev coefficients
    of ``h`` on ``[−width/2, width/2]``, ``M⁻¹`` (numpy float64: never fake
    tensors, whatever traces the caller) and the predicted relative L2 error
    in this dim (RMS over tap offsets)."""

    beta: float
    coef: np.ndarray
    minv: np.ndarray
    err: float


def _kb_transform_np(nu, width, beta):
    z = np.sqrt((beta**2 - (math.pi * width * nu) ** 2).astype(complex))
    small = np.abs(z) < 1e-6
    return width * np.where(small, 1.0, (np.sinh(z) / np.where(small, 1.0, z)).real)


def _minmax_parts(nu, width, beta, offsets):
    """``(M⁻¹, mean square error over offsets, s)`` for one apodisation shape ``beta``."""
    t = _kb_transform_np(nu, width, beta)
    if not np.all(t > 1e-300):
        return None, np.inf, None
    s = 1 / t
    lag = np.arange(width)
    m = (s**2 * np.cos(2 * math.pi * (lag[:, None] - lag[None, :])[..., None] * nu)).sum(-1)
    minv = np.linalg.pinv(m, rcond=1e-13, hermitian=True)
    d = offsets[:, None] - (np.floor(offsets - width / 2)[:, None] + 1 + lag)  # (U, width)
    b = (s * np.cos(2 * math.pi * d[..., None] * nu)).sum(-1)
    residual = len(nu) - np.einsum("uj,jk,uk->u", b, minv, b)
    return minv, float(np.maximum(residual, 0).mean() / len(nu)), s


@functools.lru_cache(maxsize=128)
def minmax_table(n, g, width):
    """The min-max interpolator for an image of ``n`` points on a grid of ``g`` (one dim).

    >>> t = minmax_table(256, 320, 4)
    >>> round(t.beta, 2), f"{t.err:.1e}"
    (6.94, '3.6e-03')
    """
    nu = (np.arange(n) - n // 2) / g
    offsets = (np.arange(32) + 0.5) / 32
    b0 = kaiser_bessel_beta(width, g / n)

    def err(beta):
        return _minmax_parts(nu, width, beta, offsets)[1]

    grid = b0 * np.linspace(0.7, 1.15, 19)
    i = int(np.argmin([err(b) for b in grid]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    r = (math.sqrt(5) - 1) / 2
    a, c = hi - r * (hi - lo), lo + r * (hi - lo)
    ea, ec = err(a), err(c)
    for _ in range(16):  # golden section around the best of the scan: β to 0.1 % of the step
        if ea <= ec:
            hi, c, ec = c, a, ea
            a = hi - r * (hi - lo)
            ea = err(a)
        else:
            lo, a, ea = a, c, ec
            c = lo + r * (hi - lo)
            ec = err(c)
    beta = float((lo + hi) / 2)
    minv, mse, s = _minmax_parts(nu, width, beta, offsets)
    degree = 16 + 2 * width  # h has frequencies below 1/2 on [-width/2, width/2]: to 1e-14 relative
    k = np.arange(degree + 1)
    x = np.cos(math.pi * (k + 0.5) / (degree + 1))  # Chebyshev nodes on [-1, 1]
    h = (s * np.cos(2 * math.pi * (x[:, None] * width / 2) * nu)).sum(-1)
    coef = 2 / (degree + 1) * (h * np.cos(math.pi * k[:, None] * (k + 0.5) / (degree + 1))).sum(-1)
    coef[0] /= 2
    return MinMaxTable(beta, coef, minv, math.sqrt(mse))


def minmax_weights(d, table):
    """The min-max weights of the taps at distances ``d`` (shape ``(..., width)``, in tap order).

    >>> t = minmax_table(16, 20, 4)
    >>> w = minmax_weights(torch.tensor([[1.5, 0.5, -0.5, -1.5]], dtype=torch.float64), t)
    >>> bool(torch.allclose(w, w.flip(-1)))  # a location midway between taps weighs them symmetrically
    True
    """
    coef = torch.as_tensor(table.coef, dtype=d.dtype, device=d.device)
    minv = torch.as_tensor(table.minv, dtype=d.dtype, device=d.device)
    x = d * (2 / (minv.shape[0]))
    b1 = b2 = torch.zeros_like(x)
    for c in coef.flip(0)[:-1]:  # Clenshaw's recurrence
        b1, b2 = 2 * x * b1 - b2 + c, b1
    h = x * b1 - b2 + coef[0]
    return h @ minv.T


# ---- the stencil ------------------------------------------------------------


def kernel_fns(width, name, betas):
    """One weight function per dim (for :func:`stencil`) from a kernel name and shapes."""
    return tuple(functools.partial(kernel, width=width, name=name, beta=b) for b in betas)


def stencil(locs, grid_size, width, weight_fns, pad_mode):
    """``(idx, weights)`` of the ``width ** ndim`` taps around each location.

    ``weight_fns[d]`` maps the distances ``u − k`` from a location to its
    ``width`` taps along dim ``d`` (shape ``(..., width)``) to their weights.

    ``locs`` has shape ``(*batch, ndim)`` in array-index coordinates; both
    results have shape ``(*batch, width ** ndim)``: row-major indices into
    the flattened grid, and the kernel weights (zero for taps off a
    zero-padded grid). The taps are the ``width`` integers ``k`` with
    ``|u - k| < width / 2`` nearest to each coordinate ``u``; the weights
    are a differentiable function of ``locs``, the indices are integers.
    """
    ndim = len(grid_size)
    taps = torch.arange(width, device=locs.device)
    idx = weights = None
    for d in range(ndim):
        u = locs[..., d, None]
        first = torch.floor(u.detach() - width / 2).long() + 1
        k = first + taps                                  # (*batch, width)
        w = weight_fns[d](u - k.to(u.dtype))
        n = grid_size[d]
        if pad_mode == "zero":
            inside = (k >= 0) & (k < n)
            w = torch.where(inside, w, torch.zeros_like(w))
            k = k.clamp(0, n - 1)
        else:
            k = torch.remainder(k, n)
        if idx is None:
            idx, weights = k, w
        else:  # taps of the previous dims (outer) times this dim's (inner): row-major
            idx = (idx[..., :, None] * n + k[..., None, :]).flatten(-2)
            weights = (weights[..., :, None] * w[..., None, :]).flatten(-2)
    return idx.contiguous(), weights.contiguous()


# ---- the operator -----------------------------------------------------------


class Interpolate(Linop):
    """Interpolate a grid at real-valued locations: ``y[..., l] = Σ_k φ(locs[l] − k) x[..., k]``.

    The sum runs over the grid points ``k`` (array indices) within half a
    kernel ``width`` of each location, ``φ`` is a separable kernel (a
    product of 1-D kernels). Maps ``(*batch, *grid)`` (sizes ``grid_size``)
    to ``(*batch, *samples)`` (the leading shape ``L`` of ``locs``); the
    adjoint scatter-adds the samples back onto the grid (gridding). The tap
    indices and weights are computed once, at construction, in a
    differentiable way from ``locs`` (``torch.func.grad`` through the
    construction gives the gradient with respect to the locations).

    Coordinates are array indices: ``locs[l, d] = 3.0`` is grid point 3,
    as in torchlinops (whose documented range is ``[0, N − 1]``). A
    location may be any real number: with ``pad_mode="circular"`` the grid
    is periodic (a location ``u`` is ``u mod N``), with ``"zero"`` the grid
    is zero outside ``[0, N − 1]``. :class:`NUFFT` uses this operator on its
    oversampled grid ``G`` with coordinates ``locs · G / N + ⌊G / 2⌋``.

    Parameters
    ----------
    locs : real tensor of shape ``(*F, *L, ndim)``
        Locations, ``ndim`` in 1 to 3. ``F`` are frame dims: the trailing
        named batch dims of the shapes, one set of locations per frame.
    grid_size : tuple of int
        The grid sizes ``(N_1, ..., N_ndim)``.
    ishape, oshape : shape, optional
        ``ishape`` ends with the ``ndim`` grid dims (default ``("...", "Nx",
        "Ny"[, "Nz"])``); ``oshape`` ends with the ``len(L)`` sample dims
        (default: the batch dims of ``ishape``, then ``"K"`` for one sample
        dim, ``"K", "K1", ...`` for more). Both name the same batch dims, in
        the same order; with frame dims, give ``oshape``.
    width : int, default 4
        Kernel width in grid points (taps per dim).
    kernel : {"kaiser_bessel", "spline"}
        Kaiser–Bessel ``I0(β √(1 − (2d/width)²))``, or the tent
        ``max(1 − |2d/width|, 0)`` (torchlinops' "spline"). A stencil
        given as ``idx`` and ``weights`` may also be labelled "minmax"
        (:class:`NUFFT`'s min-max weights, tuned to its image size).
    pad_mode : {"circular", "zero"}
        A periodic grid, or zeros outside it.
    beta : float or tuple of float, optional
        Kaiser–Bessel shape per dim; default Beatty's value for ``width``
        at oversampling 1.25.

    Notes
    -----
    The operator's fields are the stencil (``idx``, integer, and
    ``weights``, shape ``(*F, *L, width ** ndim)``) and its static
    description; ``dataclasses.replace`` takes those (new weights keep the
    taps), and ``Interpolate(idx=..., weights=..., grid_size=..., ...)``
    builds one from a stencil directly.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> G = fl.Interpolate(torch.tensor([[1.5], [3.0]]), (6,), width=2, kernel="spline")
    >>> G.ishape, G.oshape
    (('...', 'Nx'), ('...', 'K'))
    >>> G(torch.arange(6.0))
    tensor([1.5000, 3.0000])
    >>> G.H(torch.tensor([1.0, 0.0]))
    tensor([0.0000, 0.5000, 0.5000, 0.0000, 0.0000, 0.0000])
    """

    idx: torch.Tensor
    weights: torch.Tensor
    grid_size: tuple = static(converter=lambda v, what: _sizes(v, "Interpolate"))
    ishape: tuple = static(converter=as_shape)
    oshape: tuple = static(converter=as_shape)
    width: int = static(default=4)
    kernel: str = static(default="kaiser_bessel")
    pad_mode: str = static(default="circular")
    beta: tuple = static(default=None, converter=lambda b, what: None if b is None else _beta_tuple(b))
    _nframes: int = derived()
    _nsamples: int = derived()
    # the stencil as flat rows of the (frames × grid) table, and sorted by row
    # for the adjoint (funclinop.ops._bag); recomputed with every new idx
    _rows: torch.Tensor = derived(static=False, repr=False)
    _src: torch.Tensor = derived(static=False, repr=False)
    _order: torch.Tensor = derived(static=False, repr=False)
    _offsets: torch.Tensor = derived(static=False, repr=False)

    def __init__(self, locs=None, grid_size=None, *, ishape=None, oshape=None, width=4,
                 kernel="kaiser_bessel", pad_mode="circular", beta=None, idx=None, weights=None):
        # Two ways in: from locations (the stencil is computed here), or from
        # a stencil (dataclasses.replace, tree maps); both are then checked.
        if locs is not None:
            if idx is not None or weights is not None:
                raise TypeError("Interpolate: give locs, or idx and weights, not both")
            grid_size = _sizes(grid_size, "Interpolate")
            _check_locs(locs, len(grid_size), "Interpolate")
            width, kernel, pad_mode = _options(width, kernel, pad_mode)
            if kernel == "minmax":
                raise ValueError(
                    "Interpolate: the minmax kernel is tuned to an image size; build a NUFFT, "
                    "or pass its idx and weights"
                )
            beta = _betas(beta, width, len(grid_size))
            idx, weights = stencil(locs, grid_size, width, kernel_fns(width, kernel, beta), pad_mode)
            ishape, oshape = resolve_shapes(ishape, oshape, len(grid_size), locs.ndim - 1, "Interpolate")
        elif idx is None or weights is None:
            raise TypeError("Interpolate: needs locs (or idx and weights)")
        self.idx, self.weights, self.grid_size = idx, weights, grid_size
        self.ishape, self.oshape = ishape, oshape
        self.width, self.kernel, self.pad_mode, self.beta = width, kernel, pad_mode, beta
        self.__post_init__()

    def _check(self):
        if not isinstance(self.idx, torch.Tensor) or self.idx.dtype != torch.int64:
            raise TypeError(f"Interpolate: idx must be an int64 tensor, got {_what(self.idx)}")
        if not isinstance(self.weights, torch.Tensor) or not self.weights.is_floating_point():
            raise TypeError(f"Interpolate: weights must be a real floating-point tensor, got {_what(self.weights)}")
        _options(self.width, self.kernel, self.pad_mode)

    def _precompute(self):
        size, width, ishape, oshape = self.grid_size, self.width, self.ishape, self.oshape
        ndim, batch_len = len(size), len(named(ishape)) - len(size)
        if batch_len < 0:
            raise ShapeError(f"Interpolate: ishape {ishape} must end with the {ndim} grid dims of {size}")
        nsamples = len(named(oshape)) - batch_len
        batch = ishape[: len(ishape) - ndim]
        if nsamples < 1 or oshape[: len(oshape) - nsamples] != batch:
            raise ShapeError(
                f"Interpolate: oshape {oshape} must be the batch dims of ishape {ishape} "
                f"({batch}) followed by the sample dims"
            )
        nframes = self.weights.ndim - 1 - nsamples
        if self.idx.shape != self.weights.shape or self.weights.shape[-1] != width**ndim or nframes < 0:
            raise ShapeError(
                f"Interpolate: idx {tuple(self.idx.shape)} and weights {tuple(self.weights.shape)} must "
                f"both have shape (*frames, *samples, {width ** ndim}) for {nsamples} sample dims"
            )
        if nframes > len(named(batch)):
            raise ShapeError(
                f"Interpolate: locations with {nframes} frame dims need that many named batch dims "
                f"in front of the grid, got ishape {ishape}"
            )
        grid = ishape[len(ishape) - ndim:]
        samples = oshape[len(oshape) - nsamples:]
        if ELLIPSIS in grid + samples or set(grid) & set(oshape) or set(samples) & set(ishape):
            raise ShapeError(
                f"Interpolate: the grid dims {grid} and the sample dims {samples} must be new "
                f"names on their own side (ishape {ishape}, oshape {oshape})"
            )
        return {"_nframes": nframes, "_nsamples": nsamples, **self._sparse(self.idx, nframes)}

    def _sparse(self, idx, nframes):
        """The derived stencil fields for tap indices ``idx``."""
        cells = math.prod(self.grid_size)
        frames = idx.shape[:nframes]
        first = torch.arange(math.prod(frames), device=idx.device).reshape(frames + (1,) * (idx.ndim - nframes))
        rows = (idx + first * cells).reshape(-1, idx.shape[-1])
        src, order, offsets = _bag.transpose(rows, math.prod(frames) * cells)
        return {"_rows": rows, "_src": src, "_order": order, "_offsets": offsets}

    # ---- protocol -------------------------------------------------------
    @property
    def grid_shape(self):
        return self.ishape[len(self.ishape) - len(self.grid_size):]

    @property
    def sample_shape(self):
        return self.oshape[len(self.oshape) - self._nsamples:]

    @property
    def frame_shape(self):
        batch = named(self.ishape)[: len(named(self.ishape)) - len(self.grid_size)]
        return batch[len(batch) - self._nframes:] if self._nframes else ()

    def _stencil(self, dtype):
        w = self.weights.reshape(self._rows.shape).to(dtype)
        return w, self._rows, self._src, self._order, self._offsets

    def apply(self, x):
        outer = x.shape[: x.ndim - len(self.grid_size) - self._nframes]
        table = _columns(x.reshape(math.prod(outer), math.prod(x.shape[len(outer):])), self.weights.dtype)
        out = _bag.gather(table, *self._stencil(table.dtype))
        return _uncolumns(out, x.is_complex(), outer + self.weights.shape[:-1])

    def apply_adjoint(self, y):
        outer = y.shape[: y.ndim - self._nsamples - self._nframes]
        vals = _columns(y.reshape(math.prod(outer), math.prod(y.shape[len(outer):])), self.weights.dtype)
        out = _bag.scatter(vals, *self._stencil(vals.dtype))
        return _uncolumns(out, y.is_complex(), outer + self.frame_sizes + self.grid_size)

    @property
    def frame_sizes(self):
        return tuple(self.weights.shape[: self._nframes])

    def size(self, dim):
        if dim in self.grid_shape:
            return self.grid_size[self.grid_shape.index(dim)]
        if dim in self.sample_shape:
            return self.weights.shape[self._nframes + self.sample_shape.index(dim)]
        if dim in self.frame_shape:
            return self.weights.shape[self.frame_shape.index(dim)]
        return None

    def split_kind(self, dim):
        return fixed_kind(self, dim, self.grid_shape)

    def split_refusal(self, dim):
        return "interpolates over it (split the sample or batch dims instead)"

    def tile(self, slices):
        check_slices(self, slices, self.grid_shape, "it is an interpolated grid dim (split the sample dims instead)")
        index = tuple(slices.get(d, slice(None)) for d in self.frame_shape + self.sample_shape)
        if all(s == slice(None) for s in index):
            return self
        idx = self.idx[index].contiguous()
        return self._derive(idx=idx, weights=self.weights[index].contiguous(), **self._sparse(idx, self._nframes))


def _columns(x, wdtype):
    """``(B, R)`` data as the real ``(R, c)`` table the stencil reads (``c = B``, or ``2B`` complex)."""
    x = x.T.contiguous()
    if x.is_complex():
        x = torch.view_as_real(x)
    x = x.reshape(x.shape[0], -1)
    dtype = torch.promote_types(x.dtype, wdtype)
    return x.to(dtype)


def _uncolumns(out, is_complex, shape):
    """The inverse of :func:`_columns` on a result of ``R'`` rows: shape ``(*outer, ...)`` = ``shape``."""
    if is_complex:
        out = torch.view_as_complex(out.reshape(out.shape[0], out.shape[1] // 2, 2))
    return out.T.reshape(shape)


def _what(v):
    return f"{v.dtype} tensor" if isinstance(v, torch.Tensor) else type(v).__name__


def _sizes(grid_size, what):
    size = int_tuple(grid_size, f"{what}: grid_size")
    if not 1 <= len(size) <= 3:
        raise ValueError(f"{what}: grid_size must have 1 to 3 dims, got {size}")
    return size


def _check_locs(locs, ndim, what):
    if not isinstance(locs, torch.Tensor):
        raise TypeError(f"{what}: locs must be a torch.Tensor, got {type(locs).__name__}")
    if not locs.is_floating_point():
        raise TypeError(f"{what}: locs must be a real floating-point tensor, got {locs.dtype}")
    if locs.ndim < 2 or locs.shape[-1] != ndim:
        raise ShapeError(
            f"{what}: locs must have shape (*samples, {ndim}) for a {ndim}-D grid, got {tuple(locs.shape)}"
        )


def _options(width, kernel, pad_mode, what="Interpolate"):
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"{what}: width must be a positive int, got {width!r}")
    if kernel not in KERNELS:
        raise ValueError(f"{what}: kernel must be one of {KERNELS}, got {kernel!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"{what}: pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    return width, kernel, pad_mode


def _beta_tuple(beta):
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        return (float(beta),)
    return tuple(float(b) for b in beta)


def _betas(beta, width, ndim):
    if beta is None:
        return (kaiser_bessel_beta(width, 1.25),) * ndim
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        return (float(beta),) * ndim
    beta = tuple(float(b) for b in beta)
    if len(beta) != ndim:
        raise ValueError(f"Interpolate: beta has {len(beta)} entries, expected {ndim} (one per grid dim)")
    return beta


def sample_names(n, avoid):
    """Default sample dim names: ``K``, then ``K1``, ``K2``... avoiding ``avoid``."""
    names = []
    for _ in range(n):
        names.append(fresh("K", set(avoid) | set(names)))
    return tuple(names)


def resolve_shapes(ishape, oshape, ndim, nlead, what):
    """``(ishape, oshape)`` with the defaults filled in, for locations with
    ``nlead`` leading dims (frames and samples) on an ``ndim``-D grid."""
    if ishape is None:
        ishape = (ELLIPSIS,) + grid_names(ndim, what=what)
    ishape = as_shape(ishape, f"{what} ishape")
    if len(named(ishape)) < ndim or ELLIPSIS in ishape[len(ishape) - ndim:]:
        raise ShapeError(f"{what}: ishape {ishape} must end with {ndim} named grid dims")
    if oshape is None:
        batch = ishape[: len(ishape) - ndim]
        oshape = batch + sample_names(nlead, ishape)
    oshape = as_shape(oshape, f"{what} oshape")
    return ishape, oshape
