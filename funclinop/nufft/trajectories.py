"""Non-Cartesian k-space trajectories, as ``locs`` for the NUFFT.

Every generator returns a real tensor of shape ``(n_shots, n_samples, ndim)``
(spokes or interleaves first, samples along each second), in grid units and
centred: coordinate ``d`` lies in ``[-N_d/2, N_d/2)`` for the grid size
``N``, the convention of :class:`funclinop.nufft.FiNUFFT` and
:class:`funclinop.NUFFT`. Generators are deterministic (no random state).
"""

import math

import torch

from ..ops._util import int_tuple

__all__ = ["radial", "spiral", "GOLDEN_ANGLE", "RADIAL_GOLDEN_ANGLE", "GOLDEN_MEANS"]

_PHI = (1 + math.sqrt(5)) / 2
#: The golden angle of a full turn, 360° (1 - 1/φ) ≈ 137.508° (in radians).
GOLDEN_ANGLE = 2 * math.pi * (1 - 1 / _PHI)
#: The golden angle for spokes through the centre (period 180°), 180°/φ ≈ 111.246° (in radians).
RADIAL_GOLDEN_ANGLE = math.pi / _PHI


def _golden_means():
    # Chan et al., MRM 61:354 (2009): phi2 is the real root of x^3 + x - 1 (Cardano), phi1 = phi2^2
    s = math.sqrt(31 / 108)
    phi2 = (0.5 + s) ** (1 / 3) - (s - 0.5) ** (1 / 3)
    return phi2 * phi2, phi2


#: The 2-D golden means (≈ 0.4656, 0.6823) of 3-D golden-means radial sampling.
GOLDEN_MEANS = _golden_means()


def radial(n_spokes, n_readout, *, ndim=2, grid_size=None, golden=True, dtype=torch.float32):
    """Radial spokes through the centre of k-space: ``(n_spokes, n_readout, ndim)``.

    Spoke ``s`` samples ``r * u_s * N`` at ``r = (k - n_readout // 2) / n_readout``
    for ``k = 0 .. n_readout - 1`` (sample ``n_readout // 2`` is the centre,
    the centring of the grid itself), along the unit direction ``u_s``:

    - 2-D, ``golden=True``: angle ``s * 111.246°`` (``180°/φ``, golden-angle
      ordering: every prefix of spokes is nearly uniform);
      ``golden=False``: ``s * 180° / n_spokes``. ``u = (cos, sin)``.
    - 3-D, ``golden=True``: the 2-D golden means (Chan et al. 2009),
      ``z_s = frac(s φ1)``, azimuth ``2π frac(s φ2)``; ``golden=False``: a
      Fibonacci spiral on the half sphere, ``z_s = (s + 1/2) / n_spokes``,
      azimuth ``s * 137.508°``. ``u = (√(1-z²) cos a, √(1-z²) sin a, z)``.

    ``grid_size`` (an int, or one per dim) defaults to ``n_readout``: unit
    sample spacing; ``n_readout = 2 N`` samples each spoke twice as densely.
    Coordinates lie in ``[-N_d/2, N_d/2)`` (a point at ``+N_d/2`` is
    written as its periodic image ``-N_d/2``).

    >>> import torch
    >>> from funclinop.nufft import radial
    >>> locs = radial(4, 8, golden=False)
    >>> locs.shape
    torch.Size([4, 8, 2])
    >>> locs[0, :, 0]                       # the first spoke lies along x
    tensor([-4., -3., -2., -1.,  0.,  1.,  2.,  3.])
    >>> round(float(torch.atan2(*radial(2, 8)[1, -1].flip(0)).rad2deg()), 3)
    111.246
    >>> radial(16, 64, ndim=3, grid_size=32).abs().max() <= 16
    tensor(True)
    """
    n_spokes, n_readout = int_tuple((n_spokes, n_readout), "radial: n_spokes and n_readout", minimum=0)
    if ndim not in (2, 3):
        raise ValueError(f"radial: ndim must be 2 or 3, got {ndim!r}")
    size = _grid_size(n_readout if grid_size is None else grid_size, ndim, "radial")
    s = torch.arange(n_spokes, dtype=torch.float64)
    if ndim == 2:
        angle = s * RADIAL_GOLDEN_ANGLE if golden else s * (math.pi / max(n_spokes, 1))
        u = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
    else:
        if golden:
            z, azimuth = torch.frac(s * GOLDEN_MEANS[0]), 2 * math.pi * torch.frac(s * GOLDEN_MEANS[1])
        else:
            z, azimuth = (s + 0.5) / max(n_spokes, 1), s * GOLDEN_ANGLE
        rho = torch.sqrt(1 - z * z)
        u = torch.stack([rho * torch.cos(azimuth), rho * torch.sin(azimuth), z], dim=-1)
    r = (torch.arange(n_readout, dtype=torch.float64) - n_readout // 2) / max(n_readout, 1)
    return _centred(r[None, :, None] * u[:, None, :], size, dtype)


def spiral(n_interleaves, n_samples, *, grid_size=None, fov=None, resolution=None, n_turns=None,
           golden=False, dtype=torch.float32):
    """Archimedean spiral interleaves from the centre out: ``(n_interleaves, n_samples, 2)``.

    Interleave ``j`` samples ``k(τ) = (N/2) τ exp(i (2π T τ + θ_j))`` at
    ``τ = k / n_samples``, ``k = 0 .. n_samples - 1`` (x the real part, y
    the imaginary part), with ``T = n_turns`` turns, rotated by
    ``θ_j = 2π j / n_interleaves``, or by ``j * 137.508°`` with
    ``golden=True`` (golden-angle interleaves, for sliding-window or
    dynamic imaging). The default ``n_turns`` is the fewest that meet
    Nyquist radially: adjacent turns of all interleaves at most one grid unit
    apart, ``T = ceil(N / (2 n_interleaves))``.

    The grid size ``N`` is ``grid_size`` (an int; a 2-tuple must hold equal
    sizes), or ``round(fov / resolution)`` (any one length unit). Every
    coordinate lies in ``(-N/2, N/2)``.

    >>> import torch
    >>> from funclinop.nufft import spiral
    >>> locs = spiral(8, 1000, grid_size=64)
    >>> locs.shape, bool(locs.abs().max() < 32)
    (torch.Size([8, 1000, 2]), True)
    >>> locs[:, 0]                          # every interleave starts at the centre
    tensor([[0., 0.],
            [0., 0.],
            [0., 0.],
            [0., 0.],
            [0., 0.],
            [0., 0.],
            [0., 0.],
            [0., 0.]])
    >>> spiral(4, 100, fov=0.24, resolution=0.002).abs().max() < 60     # N = 120
    tensor(True)
    """
    n_interleaves, n_samples = int_tuple(
        (n_interleaves, n_samples), "spiral: n_interleaves and n_samples", minimum=0)
    n = _spiral_grid(grid_size, fov, resolution)
    if n_turns is None:
        n_turns = math.ceil(n / (2 * max(n_interleaves, 1)))
    if isinstance(n_turns, bool) or not isinstance(n_turns, (int, float)) or not n_turns > 0:
        raise ValueError(f"spiral: n_turns must be a positive number, got {n_turns!r}")
    tau = torch.arange(n_samples, dtype=torch.float64) / max(n_samples, 1)
    j = torch.arange(n_interleaves, dtype=torch.float64)
    theta = j * GOLDEN_ANGLE if golden else j * (2 * math.pi / max(n_interleaves, 1))
    phase = 2 * math.pi * n_turns * tau[None, :] + theta[:, None]
    k = (0.5 * tau)[None, :, None] * torch.stack([torch.cos(phase), torch.sin(phase)], dim=-1)
    return _centred(k, (n, n), dtype)


def _grid_size(size, ndim, what):
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size,) * ndim
    return int_tuple(size, f"{what}: grid_size", length=ndim)


def _spiral_grid(grid_size, fov, resolution):
    if grid_size is not None:
        if fov is not None or resolution is not None:
            raise ValueError("spiral: give grid_size or fov and resolution, not both")
        size = _grid_size(grid_size, 2, "spiral")
        if size[0] != size[1]:
            raise ValueError(f"spiral: the grid must be square, got grid_size {size}")
        return size[0]
    if fov is None or resolution is None:
        raise ValueError("spiral: give grid_size, or both fov and resolution")
    if not (fov > 0 and resolution > 0):
        raise ValueError(f"spiral: fov and resolution must be positive, got {fov!r} and {resolution!r}")
    return max(1, round(fov / resolution))


def _centred(k, size, dtype):
    """``k`` (in units of the grid size) scaled to grid units, wrapped into ``[-N/2, N/2)``."""
    n = torch.tensor(size, dtype=torch.float64)
    locs = torch.remainder(k * n + n / 2, n) - n / 2
    return locs.to(dtype)
