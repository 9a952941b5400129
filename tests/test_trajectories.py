"""Trajectory generators: shapes, ranges, angles, determinism."""

import math

import pytest
import torch

from funclinop.nufft import GOLDEN_ANGLE, GOLDEN_MEANS, RADIAL_GOLDEN_ANGLE, radial, spiral


def in_range(locs, size):
    n = torch.tensor(size, dtype=locs.dtype)
    return bool(((locs >= -n / 2) & (locs < n / 2)).all())


def test_golden_constants():
    assert math.degrees(RADIAL_GOLDEN_ANGLE) == pytest.approx(111.24611797, abs=1e-8)
    assert math.degrees(GOLDEN_ANGLE) == pytest.approx(137.50776405, abs=1e-8)
    phi1, phi2 = GOLDEN_MEANS
    assert phi2**3 + phi2 - 1 == pytest.approx(0, abs=1e-15)
    assert phi1 == pytest.approx(phi2**2) and phi1 == pytest.approx(0.465571231876768, abs=1e-15)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("golden", [True, False])
@pytest.mark.parametrize("n_readout", [7, 8, 64])
def test_radial_shape_range_and_spokes(ndim, golden, n_readout):
    locs = radial(13, n_readout, ndim=ndim, golden=golden, dtype=torch.float64)
    assert locs.shape == (13, n_readout, ndim) and locs.dtype == torch.float64
    assert in_range(locs, (n_readout,) * ndim)
    # each spoke is a line through the centre: sample k at (k - n//2) / n N u
    r = (torch.arange(n_readout, dtype=torch.float64) - n_readout // 2) / n_readout
    assert bool((locs[:, n_readout // 2] == 0).all())
    u = locs[:, -1] / (r[-1] * n_readout)
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(13, dtype=torch.float64))
    want = torch.remainder(r[None, :, None] * u[:, None] * n_readout + n_readout / 2, n_readout) - n_readout / 2
    torch.testing.assert_close(locs, want)


def test_radial_2d_angles():
    locs = radial(10, 16, dtype=torch.float64)
    angles = torch.atan2(locs[:, -1, 1], locs[:, -1, 0])
    want = torch.remainder(torch.arange(10, dtype=torch.float64) * RADIAL_GOLDEN_ANGLE + math.pi, 2 * math.pi) - math.pi
    torch.testing.assert_close(angles, want)
    step = torch.diff(torch.atan2(*radial(6, 16, golden=False)[:, -1].double().flip(-1).unbind(-1)))
    torch.testing.assert_close(step, torch.full((5,), math.pi / 6, dtype=torch.float64))


def test_radial_3d_directions():
    n = 200
    golden = radial(n, 4, ndim=3, dtype=torch.float64)[:, -1] / (0.25 * 4)
    fib = radial(n, 4, ndim=3, golden=False, dtype=torch.float64)[:, -1] / (0.25 * 4)
    s = torch.arange(n, dtype=torch.float64)
    torch.testing.assert_close(golden[:, 2], torch.frac(s * GOLDEN_MEANS[0]))
    torch.testing.assert_close(fib[:, 2], (s + 0.5) / n)
    for u in (golden, fib):
        torch.testing.assert_close(u.norm(dim=-1), torch.ones(n, dtype=torch.float64))
        # spread over the half sphere: the mean direction is near (0, 0, 1/2)
        torch.testing.assert_close(u.mean(0), torch.tensor([0, 0, 0.5], dtype=torch.float64), atol=0.03, rtol=0)


def test_radial_grid_size_scales_each_dim():
    locs = radial(5, 32, grid_size=(16, 8), dtype=torch.float64)
    torch.testing.assert_close(locs, radial(5, 32, dtype=torch.float64) * torch.tensor([0.5, 0.25], dtype=torch.float64))
    assert in_range(locs, (16, 8))


def test_spiral_shape_range_and_turns():
    locs = spiral(4, 500, grid_size=64, dtype=torch.float64)
    assert locs.shape == (4, 500, 2)
    assert bool((locs.norm(dim=-1) < 32).all()) and in_range(locs, (64, 64))
    radius = locs.norm(dim=-1)
    torch.testing.assert_close(radius[0], 32 * torch.arange(500, dtype=torch.float64) / 500)
    # default turns: ceil(64 / (2 * 4)) = 8: the angle of interleave 0 goes round 8 times
    angle = torch.atan2(locs[0, 1:, 1], locs[0, 1:, 0])
    turns = (torch.diff(angle) < -math.pi).sum()
    assert int(turns) == 8 - 1 or int(turns) == 8
    # interleaves are rotations of each other by 2 pi / 4
    c = torch.view_as_complex(locs.contiguous())
    torch.testing.assert_close(c[1], c[0] * torch.exp(torch.tensor(0.5j * math.pi, dtype=torch.complex128)))


@pytest.mark.parametrize("n, arms", [(64, 6), (48, 1), (40, 16)])
def test_spiral_radial_nyquist(n, arms):
    """Along a ray, the crossings of all interleaves are at most one grid unit
    apart (the default number of turns meets Nyquist radially)."""
    locs = spiral(arms, 20000, grid_size=n, dtype=torch.float64)
    radii = []
    for arm in locs:
        angle = torch.atan2(arm[:, 1], arm[:, 0])
        jumps = torch.nonzero((angle[:-1] < 0) & (angle[1:] >= 0)).flatten()  # crossing the +x axis
        radii.append(arm[jumps + 1].norm(dim=-1))
    radii = torch.sort(torch.cat(radii + [torch.tensor([0.0, n / 2], dtype=torch.float64)])).values
    assert float(torch.diff(radii).max()) <= 1 + 0.01


def test_spiral_golden_and_fov():
    g = torch.view_as_complex(spiral(3, 50, grid_size=32, golden=True, dtype=torch.float64).contiguous())
    torch.testing.assert_close(g[2], g[0] * torch.exp(torch.tensor(2j * GOLDEN_ANGLE, dtype=torch.complex128)))
    torch.testing.assert_close(spiral(2, 50, fov=0.256, resolution=0.002), spiral(2, 50, grid_size=128))


def test_deterministic():
    assert torch.equal(radial(33, 17, ndim=3), radial(33, 17, ndim=3))
    assert torch.equal(spiral(5, 99, grid_size=40, golden=True), spiral(5, 99, grid_size=40, golden=True))


def test_errors():
    with pytest.raises(ValueError, match="ndim must be 2 or 3"):
        radial(4, 8, ndim=1)
    with pytest.raises(TypeError, match="n_spokes"):
        radial(4.0, 8)
    with pytest.raises(ValueError, match="grid_size has 3 entries"):
        radial(4, 8, grid_size=(8, 8, 8))
    with pytest.raises(ValueError, match="fov and resolution"):
        spiral(4, 8)
    with pytest.raises(ValueError, match="not both"):
        spiral(4, 8, grid_size=8, fov=1.0, resolution=0.1)
    with pytest.raises(ValueError, match="square"):
        spiral(4, 8, grid_size=(8, 16))
