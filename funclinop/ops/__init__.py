"""Leaf operators, one small file per family."""
from .adjoint import Adjoint
from .blocks import ArrayToBlocks, BlocksToArray
from .conv import Convolution, Correlation
from .einops import Rearrange, Repeat, SumReduce
from .dense import Dense
from .fft import FFT
from .pad import Crop, Pad, PadDim, Truncate
from .sampling import Sampling
from .diagonal import Diagonal, Scalar
from .function import FunctionLinop
from .identity import Identity, Zero
from .interp import Interpolate
from .nufft import NUFFT

__all__ = [
    "Adjoint", "ArrayToBlocks", "BlocksToArray", "Convolution", "Correlation", "Crop", "Dense",
    "Diagonal", "FFT", "FunctionLinop", "Identity", "Interpolate", "NUFFT", "Pad", "PadDim", "Rearrange", "Repeat",
    "Sampling", "Scalar", "SumReduce", "Truncate", "Zero",
]
