"""Non-Cartesian imaging: trajectories, density compensation and the finufft backend.

The operators themselves, :class:`funclinop.NUFFT` and
:class:`funclinop.Interpolate`, live with the rest of the catalogue.
"""

from ..ops.nufft import toeplitz_normal  # noqa: F401
from .density import density_compensation  # noqa: F401
