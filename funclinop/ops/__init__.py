"""Leaf operators, one small file per family."""
from .adjoint import Adjoint
from .dense import Dense
from .fft import FFT
from .pad import Crop, Pad, PadDim, Truncate
from .sampling import Sampling
from .diagonal import Diagonal, Scalar
from .function import FunctionLinop
from .identity import Identity, Zero
