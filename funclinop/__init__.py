"""funclinop: functional named-dimension linear operators for PyTorch.

Every operator is an immutable pytree; applying it, its adjoint and its
normal are pure functions; splitting it over named dims is a pure function
returning a pytree of tiles. See ``docs/`` for the guide.
"""

from importlib import metadata as _metadata

from . import alg, device, dims, distributed, tiles  # noqa: F401  (public submodules)
from .compose import Add, Chain
from .concat import Concat, Stack
from .device import ToDevice, to
from .distributed import distribute
from .dims import ELLIPSIS, Dim
from .errors import DeviceError, ShapeError
from .func import grad
from .linop import Linop, SplitKind, adjoint, apply, derived, normal, static, tree_equal
from .ops import (
    FFT,
    Adjoint,
    ArrayToBlocks,
    BlocksToArray,
    Convolution,
    Correlation,
    Crop,
    Dense,
    Diagonal,
    FunctionLinop,
    Identity,
    Interpolate,
    NUFFT,
    Pad,
    PadDim,
    Rearrange,
    Repeat,
    Sampling,
    Scalar,
    SumReduce,
    Truncate,
    Zero,
)
from .display import show
from . import nufft  # noqa: F401  (non-Cartesian helpers, after the operators they use)
from .scipy import from_scipy, to_scipy
from .split import BatchSpec, create_batched_linop, size, split_linop, tile
from .tiles import VmapTiles

try:
    __version__ = _metadata.version("funclinop")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
    __version__ = "0+unknown"


def __getattr__(name):
    # funclinop.testing (checks, factories, strategies) loads on first use
    if name == "testing":
        import importlib

        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module 'funclinop' has no attribute {name!r}")

__all__ = [
    # the protocol and its pure functions
    "Linop", "SplitKind", "static", "derived", "apply", "adjoint", "normal", "tree_equal", "grad", "to",
    # named dims and errors
    "Dim", "ELLIPSIS", "ShapeError", "DeviceError",
    # core operators
    "Dense", "Diagonal", "Scalar", "Identity", "Zero", "FunctionLinop", "Adjoint",
    # composites
    "Chain", "Add", "Concat", "Stack",
    # catalogue
    "FFT", "Pad", "Crop", "PadDim", "Truncate", "Sampling", "Rearrange", "SumReduce", "Repeat",
    "ArrayToBlocks", "BlocksToArray", "Convolution", "Correlation",
    # non-Cartesian
    "Interpolate", "NUFFT",
    # splitting, batching, devices
    "tile", "size", "split_linop", "BatchSpec", "create_batched_linop", "VmapTiles", "ToDevice",
    # display
    "show",
    # operators sharded over torch.distributed ranks
    "distribute",
    # scipy.sparse.linalg bridge
    "to_scipy", "from_scipy",
]
