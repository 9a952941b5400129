"""Non-Cartesian imaging: trajectories, density compensation and the finufft backend.

The operators themselves, :class:`funclinop.NUFFT` and
:class:`funclinop.Interpolate`, live with the rest of the catalogue.
"""

from ..ops.finufft import FiNUFFT
from .trajectories import GOLDEN_ANGLE, GOLDEN_MEANS, RADIAL_GOLDEN_ANGLE, radial, spiral
