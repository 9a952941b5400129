"""Testing helpers for users' own operators: checks, factories, strategies."""

from . import factories  # noqa: F401  (registers the built-in factories)
from .checks import (check_adjoint, check_dense, check_normal, check_pytree, default_rtol, inner, random_input,
                     rtol_for, to_dense)
from .registry import FACTORIES, DTYPES, NotApplicable, register_factory, randn, input_for, output_dims
from .trees import NODES, random_leaf, random_tree, refresh_leaves

__all__ = [
    "check_adjoint", "check_normal", "check_pytree", "check_dense", "to_dense", "default_rtol", "rtol_for", "inner", "random_input",
    "FACTORIES", "DTYPES", "NotApplicable", "register_factory", "randn", "input_for",
    "output_dims", "NODES", "random_leaf", "random_tree", "refresh_leaves",
]
