"""NUFFT: the non-uniform discrete Fourier transform, and its Toeplitz normal.

``NUFFT = Interpolate ∘ FFT ∘ Pad ∘ Diagonal(apodisation)``: the image is
divided by a kernel's Fourier transform, zero-padded to an oversampled
grid, transformed by an FFT and interpolated at the sample locations.
"""

import functools
import math

import torch

from ..dims import ELLIPSIS, as_shape, fresh, named
from ..errors import ShapeError
from ..linop import Linop, derived, static
from ._util import check_slices, fixed_kind
from .diagonal import Diagonal
from .fft import FFT
from .interp import (Interpolate, _check_locs, _options, _sizes, kaiser_bessel_beta, kernel_fns, kernel_transform,
                     minmax_table, minmax_weights, resolve_shapes, stencil)
from .pad import Pad

__all__ = ["NUFFT", "ToeplitzNormal", "nudft_matrix", "toeplitz_normal", "toeplitz_kernel", "eps_parameters"]

BACKENDS = ("torch", "finufft")


def eps_parameters(eps):
    """``(oversamp, width)`` meeting a relative accuracy ``eps`` (1e-1 to 1e-6).

    Oversampling 2 and a Kaiser–Bessel kernel of ``⌈log10(1/eps)⌉ + 1`` taps
    (Beatty's shape) give errors below ``eps``, measured against a direct
    NUDFT in float64 (tests/test_nufft.py).

    >>> eps_parameters(1e-3)
    (2.0, 4)
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 1e-6 <= eps < 1:
        raise ValueError(f"NUFFT: eps must be a number in [1e-6, 1), got {eps!r}")
    return 2.0, math.ceil(-math.log10(eps) - 1e-9) + 1


def padded_sizes(grid_size, oversamp):
    """The oversampled grid: ``⌈oversamp · N⌉`` per dim."""
    return tuple(max(math.ceil(oversamp * n - 1e-9), 1) for n in grid_size)


def apodisation(grid_size, padded, width, kernel, betas, dtype):
    """The image-domain weight: ``1/√N`` over the kernel's transform at ``n / G`` (centred ``n``).

    ``1/√N`` is the NUFFT's scale, the FFT on the oversampled grid being unnormalised.
    """
    weight = None
    for n, g, beta in zip(grid_size, padded, betas):
        centred = torch.arange(n, dtype=torch.float64) - n // 2
        w = 1 / (math.sqrt(n) * kernel_transform(centred / g, width, kernel, beta))
        weight = w if weight is None else weight[..., None] * w
    return weight.to(dtype)


def _grid_coords(locs, grid_size, padded, centred=True):
    """NUFFT locations (centred, image-grid units) as array indices on the padded grid:
    origin at ``⌊G/2⌋`` (``centred``), or at 0 (the wrapped grid, read circularly)."""
    scale = torch.tensor([g / n for n, g in zip(grid_size, padded)], dtype=locs.dtype, device=locs.device)
    if not centred:
        return locs * scale
    shift = torch.tensor([g // 2 for g in padded], dtype=locs.dtype, device=locs.device)
    return locs * scale + shift


def _wrap(x, size, padded):
    """Zero-pad the trailing grid dims from ``size`` to ``padded`` in wrapped
    order: array index ``i`` (centred ``i − ⌊N/2⌋``) goes to ``(i − ⌊N/2⌋) mod G``.
    The FFT of that is the centred spectrum, rolled so that frequency 0 is index 0."""
    for d, (n, g) in enumerate(zip(size, padded)):
        axis, h = x.ndim - len(size) + d, n // 2
        zeros = x.new_zeros(x.shape[:axis] + (g - n,) + x.shape[axis + 1:])
        x = torch.cat([x.narrow(axis, h, n - h), zeros, x.narrow(axis, 0, h)], axis)
    return x


def _fft(x, axes, transform, norm):
    """An unnormalised transform (MKL refuses one with no data: an empty batch)."""
    if x.numel() == 0:
        return x.to(x.dtype if x.is_complex() else x.dtype.to_complex())
    return transform(x, dim=axes, norm=norm)


def _unwrap(x, size, padded):
    """The adjoint of :func:`_wrap`: the image's entries of a wrapped grid."""
    for d, (n, g) in enumerate(zip(size, padded)):
        axis, h = x.ndim - len(size) + d, n // 2
        x = torch.cat([x.narrow(axis, g - h, h), x.narrow(axis, 0, n - h)], axis)
    return x


def _check_range(locs, grid_size):
    if locs.numel() == 0:
        return
    half = torch.tensor([n / 2 for n in grid_size], dtype=locs.dtype, device=locs.device)
    bad = (locs.detach() < -half) | (locs.detach() >= half)
    if bool(bad.any()):
        d = int(bad.nonzero()[0, -1])
        v = locs.detach()[bad].flatten()[0]
        n = grid_size[d]
        raise ValueError(
            f"NUFFT: locs[..., {d}] has value {float(v)}, outside [{-n / 2}, {n / 2}) for grid size {n} "
            f"(locations are centred, in grid units)"
        )


class NUFFT(Linop):
    """The non-uniform FFT: an image sampled in k-space at real-valued locations.

    With array index ``i_d`` and centred coordinate ``n_d = i_d − ⌊N_d/2⌋``,
    ``y[..., l] = (∏ N_d)^(−1/2) Σ_n x[..., n] exp(−2πi Σ_d locs[l, d] n_d / N_d)``.
    At integer locations this is ``FFT(ndim, centered=True)`` followed by
    :class:`Sampling` at the indices ``locs + ⌊N/2⌋`` (odd sizes included).
    Computed as ``Interpolate ∘ FFT ∘ Pad ∘ Diagonal``: the image is divided
    by the exact Fourier transform of a Kaiser–Bessel kernel, zero-padded to the
    oversampled grid ``G = ⌈oversamp · N⌉``, transformed by an FFT and
    interpolated at ``locs · G / N`` (:class:`Interpolate` coordinates, read
    circularly). The centring is folded away: the padding puts the image's
    origin at index 0 (wrapped order), so the spectrum needs no shift either.
    The adjoint is the exact transpose of that computation.

    Parameters
    ----------
    locs : real tensor of shape ``(*F, *L, ndim)``
        Sample locations in grid units, centred: each coordinate in
        ``[−N_d/2, N_d/2)``. ``F`` are frame dims (one trajectory per frame):
        the trailing named batch dims of both shapes; give ``oshape`` then.
    grid_size : tuple of int
        The image size ``(N_1, ..., N_ndim)``, ``ndim`` in 1 to 3.
    ishape, oshape : shape, optional
        ``ishape`` ends with the grid dims (default ``("...", "Nx", "Ny"[,
        "Nz"])``), ``oshape`` with the sample dims (default the batch dims
        of ``ishape`` then ``"K"``, or ``"K", "K1", ...`` when ``L`` has
        several dims). Other dims are batch dims shared by both.
    oversamp : float, default 1.25
    width : int, default 4
        Kernel width in oversampled grid points.
    kernel : {"minmax", "kaiser_bessel", "spline"}
        "minmax": per location, the tap weights with the least error summed
        over the image's frequencies (Fessler and Sutton's min-max
        interpolator), for a Kaiser–Bessel apodisation tuned to each dim's
        sizes (:func:`~funclinop.ops.interp.minmax_table`).
        "kaiser_bessel": the kernel itself, with Beatty's shape for the
        actual oversampling of each dim.
    eps : float, optional
        A relative accuracy (1e-1 to 1e-6): sets ``oversamp`` and ``width``
        (:func:`eps_parameters`), overriding the two arguments.
    toeplitz : bool, default False
        Compute, at construction, the kernel that makes ``A.N`` a Toeplitz
        operator (:func:`toeplitz_normal`); otherwise ``A.N`` is ``A.H ∘ A``.
    backend : {"torch", "finufft"}
        "finufft" returns ``funclinop.ops.finufft.FiNUFFT`` (same
        convention and shapes; ``eps`` defaults to 1e-6 there, and
        ``toeplitz=True`` is refused).

    Notes
    -----
    The defaults are accurate to about 3.6e-3 per dim, adding in quadrature
    (relative L2: 5–5.7e-3 in 2-D, 6–7.2e-3 in 3-D, less for sizes whose
    ``⌈1.25 N⌉`` oversamples more; SigPy and ``kernel="kaiser_bessel"``:
    7e-3 and 9e-3); no 4 taps do better on that grid. ``oversamp=2,
    width=6`` to 1e-5. Splitting works over batch, frame and sample dims;
    the grid dims are transformed and cannot be split, and with
    ``toeplitz=True`` neither can the sample dims (the kernel sums over all
    the samples; tiles could not rebuild it).

    The tap weights are differentiable functions of ``locs`` (the gradient
    of a loss of ``fl.NUFFT(locs, N)(x)`` with respect to ``locs`` flows
    through them); the Toeplitz kernel is computed from ``locs`` detached.
    The fields are the parts: ``interp`` (:class:`Interpolate` on the
    oversampled grid), ``apod`` (the :class:`Diagonal` apodisation) and
    ``psf`` (the Toeplitz kernel, None without one); ``dataclasses.replace``
    and ``NUFFT(interp=..., apod=..., psf=..., grid_size=...)`` take those.
    The locations are not kept: build a new NUFFT for new ones.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> _ = torch.manual_seed(0)
    >>> locs = torch.tensor([[0.0, 0.0], [-1.5, 2.25], [3.0, -4.0]], dtype=torch.float64)
    >>> A = fl.NUFFT(locs, (8, 8), eps=1e-6)
    >>> A.ishape, A.oshape
    (('...', 'Nx', 'Ny'), ('...', 'K'))
    >>> x = torch.randn(8, 8, dtype=torch.complex128)
    >>> exact = fl.ops.nufft.nudft_matrix(locs, (8, 8)) @ x.flatten()
    >>> bool((A(x) - exact).norm() < 2e-6 * exact.norm())
    True
    >>> T = fl.NUFFT(locs, (8, 8), toeplitz=True)
    >>> bool((T.N(x) - A.H(A(x))).norm() < 1e-3 * x.norm())
    True
    """

    interp: Interpolate
    apod: Diagonal
    psf: torch.Tensor | None = None
    grid_size: tuple = static(default=None, converter=lambda v, what: _sizes(v, "NUFFT"))
    ishape: tuple = derived()
    oshape: tuple = derived()
    _axes: tuple = derived()  # the oversampled grid's dims, counted from the end

    def __new__(cls, *args, backend="torch", **kwargs):
        if backend not in BACKENDS:
            raise ValueError(f"NUFFT: backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "finufft":
            return _finufft(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, locs=None, grid_size=None, *, ishape=None, oshape=None, oversamp=1.25, width=4,
                 kernel="minmax", eps=None, toeplitz=False, backend="torch",
                 interp=None, apod=None, psf=None):
        # Two ways in: from locations (everything is computed here), or from
        # the parts (dataclasses.replace, tree maps); both are then checked.
        if locs is not None:
            if interp is not None or apod is not None or psf is not None:
                raise TypeError("NUFFT: give locs, or the parts (interp, apod, psf), not both")
            interp, apod, psf = _build(locs, grid_size, ishape, oshape, oversamp, width, kernel, eps, toeplitz)
            grid_size = _sizes(grid_size, "NUFFT")
        elif interp is None or apod is None:
            raise TypeError("NUFFT: needs locs and grid_size")
        self.interp, self.apod, self.psf, self.grid_size = interp, apod, psf, grid_size
        self.__post_init__()

    def _check(self):
        if not isinstance(self.interp, Interpolate):
            raise TypeError(f"NUFFT: interp must be an Interpolate, got {type(self.interp).__name__}")
        if not isinstance(self.apod, Diagonal):
            raise TypeError(f"NUFFT: apod must be a Diagonal, got {type(self.apod).__name__}")

    def _precompute(self):
        interp, apod, size = self.interp, self.apod, self.grid_size
        ndim = len(size)
        if len(interp.grid_size) != ndim:
            raise ShapeError(f"NUFFT: interp acts on a {len(interp.grid_size)}-D grid, grid_size {size} is {ndim}-D")
        ishape = apod.ioshape
        grid = ishape[len(ishape) - ndim:]
        batch = ishape[: len(ishape) - ndim]
        if interp.ishape[: len(interp.ishape) - ndim] != batch:
            raise ShapeError(f"NUFFT: apod {ishape} and interp {interp.ishape} have different batch dims")
        padded = interp.grid_shape
        from ..compose import Chain

        # the shapes and sizes fit together (the parts the computation stands for)
        Chain(apod, Pad(interp.grid_size, size, grid, padded, batch), FFT(ndim, batch, (padded, padded)), interp)
        psf = self.psf
        if psf is not None:
            if not isinstance(psf, torch.Tensor):
                raise TypeError(f"NUFFT: psf must be a tensor or None, got {type(psf).__name__}")
            want = tuple(interp.size(d) for d in interp.frame_shape) + tuple(2 * n for n in size)
            if not psf.is_complex():
                raise TypeError(f"NUFFT: psf must be a complex tensor, got {psf.dtype}")
            if tuple(psf.shape) != want:
                raise ShapeError(f"NUFFT: psf has shape {tuple(psf.shape)}, expected {want} (frames, then 2× the grid)")
        return dict(ishape=ishape, oshape=interp.oshape, _axes=tuple(range(-ndim, 0)))

    # ---- protocol -------------------------------------------------------
    @property
    def toeplitz(self):
        return self.psf is not None

    @property
    def grid_shape(self):
        return self.ishape[len(self.ishape) - len(self.grid_size):]

    def apply(self, x):
        grid = _wrap(self.apod.apply(x), self.grid_size, self.interp.grid_size)
        return self.interp.apply(_fft(grid, self._axes, torch.fft.fftn, "backward"))

    def apply_adjoint(self, y):
        grid = _fft(self.interp.apply_adjoint(y), self._axes, torch.fft.ifftn, "forward")
        return self.apod.apply_adjoint(_unwrap(grid, self.grid_size, self.interp.grid_size))

    def normal(self):
        if not self.toeplitz:
            return super().normal()
        return ToeplitzNormal(self.psf, self.ishape, self.grid_size)

    def size(self, dim):
        if dim in self.grid_shape:
            return self.grid_size[self.grid_shape.index(dim)]
        return self.interp.size(dim)

    def _unsplittable(self):
        # The Toeplitz kernel sums over all the samples, and a tile of them
        # cannot compute its own (the locations are not kept): tiles over
        # sample dims would not add up to this normal.
        fixed = self.grid_shape + self.interp.grid_shape
        return fixed + (self.interp.sample_shape if self.toeplitz else ())

    def split_kind(self, dim):
        return fixed_kind(self, dim, self._unsplittable())

    def split_refusal(self, dim):
        if dim in self.interp.sample_shape:
            return ("holds a Toeplitz kernel summed over all its samples (split a NUFFT built "
                    "with toeplitz=False over its sample dims, or split batch or frame dims)")
        return "Fourier-transforms its grid dims (split the batch, frame or sample dims instead)"

    def tile(self, slices):
        for d in self._unsplittable():
            check_slices(self, slices, (d,), self.split_refusal(d))
        interp = self.interp.tile(slices)
        if interp is self.interp:
            return self
        psf = self.psf
        if self.toeplitz:
            psf = psf[tuple(slices.get(d, slice(None)) for d in self.interp.frame_shape)]
        return self._derive(interp=interp, psf=psf)


def _build(locs, grid_size, ishape, oshape, oversamp, width, kernel, eps, toeplitz):
    """``(interp, apod, psf)`` of a NUFFT from its constructor arguments."""
    size = _sizes(grid_size, "NUFFT")
    _check_locs(locs, len(size), "NUFFT")
    if eps is not None:
        oversamp, width = eps_parameters(eps)
    if isinstance(oversamp, bool) or not isinstance(oversamp, (int, float)) or oversamp < 1:
        raise ValueError(f"NUFFT: oversamp must be a number >= 1, got {oversamp!r}")
    if not isinstance(toeplitz, bool):
        raise TypeError(f"NUFFT: toeplitz must be a bool, got {type(toeplitz).__name__}")
    _check_range(locs, size)
    ishape, oshape = resolve_shapes(ishape, oshape, len(size), locs.ndim - 1, "NUFFT")
    padded = padded_sizes(size, oversamp)
    width, kernel, _ = _options(width, kernel, "circular", "NUFFT")
    if kernel == "minmax":
        tables = [minmax_table(n, g, width) for n, g in zip(size, padded)]
        betas = tuple(t.beta for t in tables)
        fns = tuple(functools.partial(minmax_weights, table=t) for t in tables)
    else:
        betas = tuple(kaiser_bessel_beta(width, g / n) for n, g in zip(size, padded))
        fns = kernel_fns(width, kernel, betas)
    grid = ishape[len(ishape) - len(size):]
    avoid = set(named(ishape)) | set(named(oshape))
    padded_names = tuple(fresh(d + "os", avoid) for d in grid)
    batch = ishape[: len(ishape) - len(size)]
    nsamples = len(named(oshape)) - len(named(batch))
    idx, weights = stencil(_grid_coords(locs, size, padded, centred=False), padded, width, fns, "circular")
    interp = Interpolate(idx=idx, weights=weights, grid_size=padded, ishape=batch + padded_names,
                         oshape=oshape, width=width, kernel=kernel, beta=betas)
    # min-max weights interpolate the image divided by a Kaiser–Bessel transform
    shape = "kaiser_bessel" if kernel == "minmax" else kernel
    weight = apodisation(size, padded, width, shape, betas, torch.float64)
    if not bool(torch.isfinite(weight).all()) or float(weight.abs().max() / weight.abs().min()) > 1e6:
        raise ValueError(
            f"NUFFT: the {kernel} kernel of width {width} has a Fourier transform that (nearly) vanishes "
            f"inside the image on the oversampled grid {padded}; use a smaller width, a larger oversamp "
            f"or the Kaiser-Bessel kernel"
        )
    apod = Diagonal(weight.to(dtype=locs.dtype, device=locs.device), ishape)
    psf = None
    if toeplitz:
        nframes = locs.ndim - 1 - nsamples
        psf = toeplitz_kernel(locs, size, None, nframes)
    return interp, apod, psf


def _finufft(locs, grid_size, *, ishape=None, oshape=None, eps=None, toeplitz=False, **options):
    if toeplitz:
        raise ValueError(
            "NUFFT: toeplitz=True needs backend='torch' (the Toeplitz kernel is built with it; "
            "fl.NUFFT(locs, grid_size, toeplitz=True).N is the same normal)"
        )
    from .finufft import FiNUFFT  # optional: needs the finufft package

    size = _sizes(grid_size, "NUFFT")
    _check_locs(locs, len(size), "NUFFT")
    ishape, oshape = resolve_shapes(ishape, oshape, len(size), locs.ndim - 1, "NUFFT")
    return FiNUFFT(locs, size, ishape=ishape, oshape=oshape, eps=1e-6 if eps is None else eps)


# ---- the exact transform and the Toeplitz normal ------------------------------


def nudft_matrix(locs, grid_size):
    """The direct NUDFT as a dense matrix ``(*L, ∏N)`` (row-major image index), complex of locs' precision.

    >>> import torch
    >>> nudft_matrix(torch.tensor([[0.0]]), (4,)).abs()
    tensor([[0.5000, 0.5000, 0.5000, 0.5000]])
    """
    ctype = (torch.ones((), dtype=locs.dtype) * 1j).dtype
    phase = torch.zeros(locs.shape[:-1] + (1,), dtype=locs.dtype, device=locs.device)
    for d, n in enumerate(grid_size):
        centred = torch.arange(n, dtype=locs.dtype, device=locs.device) - n // 2
        term = locs[..., d, None] * centred / n
        phase = (phase[..., :, None] + term[..., None, :]).flatten(-2)
    return torch.exp(-2j * math.pi * phase.to(ctype)) / math.sqrt(math.prod(grid_size))


def toeplitz_kernel(locs, grid_size, weights, nframes):
    """The Fourier-domain kernel (``(*F, 2N...)``) of ``AᴴWA`` on the doubled grid.

    ``(AᴴWA x)[n] = Σ_m T[n − m] x[m]`` with ``T[d] = (∏N)^(−1) Σ_l w_l
    exp(2πi Σ_d locs[l, d] d_d / N_d)``: a circular convolution on a grid
    of ``2N`` (no wrap-around, since ``|n − m| < N``), whose transform is
    the returned kernel. ``T`` is computed exactly (a separable sum over the
    samples) for small problems, otherwise with an adjoint NUFFT accurate to
    1e-6 on the doubled grid, in float64 either way.
    """
    flocs = locs.detach().to(torch.float64)
    frames = flocs.shape[:nframes]
    flocs = flocs.reshape(frames + (-1, len(grid_size)))
    m = flocs.shape[-2]
    w = torch.ones(flocs.shape[:-1], dtype=torch.float64, device=flocs.device) if weights is None else \
        weights.detach().to(torch.float64).reshape(frames + (m,))
    doubled = tuple(2 * n for n in grid_size)
    if m * math.prod(doubled) <= 2**24:
        t = _kernel_exact(flocs, grid_size, w)
    else:
        t = _kernel_nufft(flocs, grid_size, w, nframes)
    axes = tuple(range(-len(grid_size), 0))
    for axis in axes:  # the difference -N never occurs; without it the kernel is Hermitian
        t = t.index_fill(axis, torch.tensor([0], device=t.device), 0)
    psf = torch.fft.fftn(torch.fft.ifftshift(t, dim=axes), dim=axes)
    # real (Hermitian kernel), stored complex: the transforms make the output complex
    ctype = (torch.ones((), dtype=locs.dtype) * 1j).dtype
    return psf.real.to(ctype)


def _kernel_exact(locs, grid_size, w):
    t = w.to(torch.complex128)[..., None]  # (*F, M, 1): the samples' weights times the phases so far
    for d, n in enumerate(grid_size):
        diff = torch.arange(-n, n, dtype=torch.float64, device=locs.device)
        e = torch.exp(2j * math.pi * locs[..., d, None] * diff / n)  # (*F, M, 2n)
        t = (t[..., :, None] * e[..., None, :]).flatten(-2)
    t = t.sum(-2) / math.prod(grid_size)
    return t.reshape(t.shape[:-1] + tuple(2 * n for n in grid_size))


def _kernel_nufft(locs, grid_size, w, nframes):
    # On the doubled grid the same phases are those of an adjoint NUFFT at 2·locs.
    doubled = tuple(2 * n for n in grid_size)
    ndim = len(grid_size)
    fnames = tuple(f"F{i}" for i in range(nframes))
    grid = tuple(f"N{i}" for i in range(ndim))
    A = NUFFT(2 * locs, doubled, ishape=fnames + grid, oshape=fnames + ("K",), eps=1e-6)
    scale = math.sqrt(math.prod(doubled)) / math.prod(grid_size)
    return A.H(w.to(torch.complex128)) * scale


class ToeplitzNormal(Linop):
    """``AᴴWA`` of a NUFFT as a Toeplitz operator: a convolution, by FFTs on the doubled grid.

    ``y = Crop(IFFT(psf · FFT(Pad(x))))`` with ``Pad`` to ``2N`` per grid
    dim; ``psf`` (real: the kernel it transforms is Hermitian) has shape
    ``(*F, 2N...)`` and is built by :func:`toeplitz_kernel`. The operator is
    self-adjoint. It is one operator rather than a chain so that its
    doubled grid is internal: no dim name outside it can clash with it.
    Batch and frame dims split; grid dims do not.

    >>> import torch, funclinop as fl
    >>> _ = torch.manual_seed(0)
    >>> locs = torch.rand(30, 2, dtype=torch.float64) * 8 - 4
    >>> T = fl.NUFFT(locs, (8, 8), toeplitz=True).N
    >>> type(T).__name__, T.ishape, tuple(T.psf.shape)
    ('ToeplitzNormal', ('...', 'Nx', 'Ny'), (16, 16))
    """

    psf: torch.Tensor
    ioshape: tuple = static(converter=as_shape)
    grid_size: tuple = static(converter=lambda v, what: _sizes(v, "ToeplitzNormal"))
    _axes: tuple = derived()
    _doubled: tuple = derived()
    _window: tuple = derived()

    def _check(self):
        if not isinstance(self.psf, torch.Tensor) or not self.psf.is_complex():
            raise TypeError(f"ToeplitzNormal: psf must be a complex tensor, got {type(self.psf).__name__}")

    def _precompute(self):
        size, ioshape = self.grid_size, self.ioshape
        ndim = len(size)
        doubled = tuple(2 * n for n in size)
        if tuple(self.psf.shape[self.psf.ndim - ndim:]) != doubled or self.psf.ndim - ndim > len(named(ioshape)) - ndim:
            raise ShapeError(f"ToeplitzNormal: psf of shape {tuple(self.psf.shape)} does not fit grid {size} "
                             f"and ioshape {ioshape}")
        return dict(_axes=tuple(range(-ndim, 0)), _doubled=doubled,
                    _window=(Ellipsis,) + tuple(slice(0, n) for n in size))

    @property
    def ishape(self):
        return self.ioshape

    @property
    def oshape(self):
        return self.ioshape

    @property
    def grid_shape(self):
        return self.ioshape[len(self.ioshape) - len(self.grid_size):]

    @property
    def frame_shape(self):
        nframes = self.psf.ndim - len(self.grid_size)
        batch = named(self.ioshape)[: len(named(self.ioshape)) - len(self.grid_size)]
        return batch[len(batch) - nframes:] if nframes else ()

    def apply(self, x):
        return self._convolve(x, self.psf)

    def apply_adjoint(self, y):
        return self._convolve(y, self.psf.conj())

    def _convolve(self, x, psf):
        # fftn with s pads at the end: a circular convolution on the doubled
        # grid does not see where the image sits in it
        if x.numel() == 0:  # MKL refuses a transform with no data (an empty batch)
            return x.to(torch.promote_types(x.dtype, psf.dtype))
        spectrum = torch.fft.fftn(x, s=self._doubled, dim=self._axes)
        return torch.fft.ifftn(spectrum * psf, dim=self._axes)[self._window]

    def adjoint(self):
        return self._derive(psf=self.psf.conj())

    def size(self, dim):
        if dim in self.grid_shape:
            return self.grid_size[self.grid_shape.index(dim)]
        if dim in self.frame_shape:
            return self.psf.shape[self.frame_shape.index(dim)]
        return None

    def split_kind(self, dim):
        return fixed_kind(self, dim, self.grid_shape)

    def split_refusal(self, dim):
        return "convolves over it"

    def tile(self, slices):
        check_slices(self, slices, self.grid_shape, "it is a convolved grid dim")
        index = tuple(slices.get(d, slice(None)) for d in self.frame_shape)
        if all(s == slice(None) for s in index):
            return self
        return self._derive(psf=self.psf[index])


def toeplitz_normal(A, locs, weights=None):
    """The Toeplitz form of ``A.H @ Diagonal(weights) @ A`` for a :class:`NUFFT` ``A`` built on ``locs``.

    ``weights`` (real, shape ``locs.shape[:-1]``: per sample, and per frame
    for per-frame locations) are density-compensation weights, for example
    from :func:`funclinop.nufft.density_compensation`; None is ``A.N``. The
    kernel is computed here, once; applying the result costs two FFTs on the
    doubled grid.

    >>> import torch, funclinop as fl
    >>> _ = torch.manual_seed(0)
    >>> locs = torch.rand(50, 2, dtype=torch.float64) * 8 - 4
    >>> A = fl.NUFFT(locs, (8, 8), eps=1e-6)
    >>> w = torch.rand(50, dtype=torch.float64)
    >>> T = fl.nufft.toeplitz_normal(A, locs, w)
    >>> x = torch.randn(8, 8, dtype=torch.complex128)
    >>> bool((T(x) - A.H(w * A(x))).norm() < 1e-5 * T(x).norm())
    True
    """
    if not isinstance(A, NUFFT):
        raise TypeError(f"toeplitz_normal: A must be a NUFFT, got {type(A).__name__}")
    _check_locs(locs, len(A.grid_size), "toeplitz_normal")
    interp = A.interp
    shape = tuple(interp.size(d) for d in interp.frame_shape + interp.sample_shape)
    if tuple(locs.shape[:-1]) != shape:
        raise ShapeError(
            f"toeplitz_normal: locs of shape {tuple(locs.shape)} do not match {A._name()} "
            f"(frames and samples {shape})"
        )
    if weights is not None:
        if not isinstance(weights, torch.Tensor) or weights.is_complex() or tuple(weights.shape) != shape:
            raise ShapeError(f"toeplitz_normal: weights must be a real tensor of shape {shape}, got "
                             f"{tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__}")
    psf = toeplitz_kernel(locs, A.grid_size, weights, len(interp.frame_shape))
    return ToeplitzNormal(psf, A.ishape, A.grid_size)
