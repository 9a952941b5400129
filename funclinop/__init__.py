"""funclinop: functional named-dimension linear operators for PyTorch."""

from . import alg
from .compose import Add, Chain
from .dims import ELLIPSIS, Dim
from .errors import DeviceError, ShapeError
from .linop import Linop, adjoint, apply, normal, static, derived, tree_equal
from .ops import Adjoint, Dense, Diagonal, FunctionLinop, Identity, Scalar, Zero

__version__ = "0.1.0"

__all__ = [
    "Add", "Adjoint", "Chain", "Dense", "DeviceError", "Diagonal", "Dim", "ELLIPSIS",
    "FunctionLinop", "Identity", "Linop", "Scalar", "ShapeError", "Zero", "adjoint",
    "apply", "derived", "normal", "static", "tree_equal",
]
from .ops import FFT, Crop, Pad, PadDim, Sampling, Truncate
__all__ += ["FFT", "Crop", "Pad", "PadDim", "Sampling", "Truncate"]
from .concat import Concat, Stack
__all__ += ["Concat", "Stack"]
from .device import ToDevice, to
from .split import BatchSpec, VmapTiles, create_batched_linop, size, split_linop, tile
__all__ += ["ToDevice", "to", "BatchSpec", "VmapTiles", "create_batched_linop", "size", "split_linop", "tile"]
from .ops import ArrayToBlocks, BlocksToArray, Convolution, Correlation, Rearrange, Repeat, SumReduce
__all__ += ["ArrayToBlocks", "BlocksToArray", "Convolution", "Correlation", "Rearrange", "Repeat", "SumReduce"]
from .func import grad
__all__ += ["grad"]
