"""Density compensation weights for non-Cartesian sampling (Pipe and Menon, 1999)."""

import math

import torch

from ..ops.interp import Interpolate, _check_locs, _sizes, kaiser_bessel_beta, kernel_transform
from ..ops.nufft import _check_range, _grid_coords, padded_sizes

__all__ = ["density_compensation"]


def density_compensation(locs, grid_size, iters=30, *, frames=0, oversamp=1.25, width=4, kernel="kaiser_bessel"):
    """Pipe–Menon density compensation weights for the samples at ``locs``.

    Iterates ``w ← w / (G Gᴴ w)`` from ``w = 1``, with ``G`` the
    :class:`funclinop.Interpolate` that a :class:`funclinop.NUFFT` with the
    same ``oversamp``, ``width`` and ``kernel`` uses (its kernel is positive,
    so the weights stay positive). The weights are in units of sampling
    density: samples one grid point apart (Cartesian sampling) get weights
    within 10% of 1 (the kernel's aliasing), so that ``A.H @ Diagonal(w) @
    A`` is close to the identity on images whose spectrum the samples cover.

    Parameters
    ----------
    locs : real tensor of shape ``(*F, *L, ndim)``
        NUFFT locations (centred, grid units).
    grid_size : tuple of int
    iters : int, default 30
    frames : int, default 0
        How many leading dims of ``locs`` are frames (``F``): each frame is
        a trajectory of its own, with weights of its own.
    oversamp, width, kernel
        The gridding kernel, as for :class:`funclinop.NUFFT`.

    Returns
    -------
    Real tensor of shape ``locs.shape[:-1]``.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> grid = torch.stack(torch.meshgrid(torch.arange(-4.0, 4), torch.arange(-4.0, 4), indexing="ij"), -1)
    >>> w = fl.nufft.density_compensation(grid.reshape(-1, 2), (8, 8))
    >>> bool((w - 1).abs().max() < 0.1)
    True
    """
    size = _sizes(grid_size, "density_compensation")
    _check_locs(locs, len(size), "density_compensation")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"density_compensation: iters must be a non-negative int, got {iters!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or not 0 <= frames <= locs.ndim - 2:
        raise ValueError(f"density_compensation: frames must be an int in [0, {locs.ndim - 2}], got {frames!r}")
    _check_range(locs, size)
    padded = padded_sizes(size, oversamp)
    betas = tuple(kaiser_bessel_beta(width, g / n) for n, g in zip(size, padded))
    nsamples = locs.ndim - 1 - frames
    fnames = tuple(f"F{i}" for i in range(frames))
    grid = tuple(f"G{i}" for i in range(len(size)))
    samples = tuple(f"K{i}" for i in range(nsamples))
    G = Interpolate(_grid_coords(locs.detach(), size, padded), padded, ishape=fnames + grid,
                    oshape=fnames + samples, width=width, kernel=kernel, beta=betas)
    w = torch.ones(locs.shape[:-1], dtype=locs.dtype, device=locs.device)
    for _ in range(iters):
        w = w / G(G.H(w))
    # Unit density: uniform samples one grid point apart (σ points of the
    # oversampled grid) would see G Gᴴ w ≈ w ∏ (∫φ)² / σ, so scale by that.
    unit = math.prod(float(kernel_transform(torch.zeros((), dtype=torch.float64), width, kernel, b)) ** 2 * n / g
                     for n, g, b in zip(size, padded, betas))
    return w * unit
