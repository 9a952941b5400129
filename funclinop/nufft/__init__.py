"""Non-Cartesian imaging: trajectories, density compensation, the Toeplitz
normal with weights, and the finufft backend.

The operators themselves, :class:`funclinop.NUFFT` and
:class:`funclinop.Interpolate`, live with the rest of the catalogue.
"""

from ..ops.finufft import FiNUFFT
from ..ops.nufft import toeplitz_normal
from .density import density_compensation
from .trajectories import GOLDEN_ANGLE, GOLDEN_MEANS, RADIAL_GOLDEN_ANGLE, radial, spiral

__all__ = ["FiNUFFT", "toeplitz_normal", "density_compensation", "radial", "spiral",
           "GOLDEN_ANGLE", "GOLDEN_MEANS", "RADIAL_GOLDEN_ANGLE"]
