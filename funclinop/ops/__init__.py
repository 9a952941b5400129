"""Leaf operators, one small file per family."""
from .adjoint import Adjoint
from .dense import Dense
from .diagonal import Diagonal, Scalar
from .function import FunctionLinop
from .identity import Identity, Zero
