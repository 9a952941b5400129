"""Hypothesis strategies drawing random operators and matching inputs.

>>> from hypothesis import given, settings
>>> from funclinop.testing import check_adjoint, strategies as fst
>>> @settings(deadline=None)
... @given(fst.cases(depth=3))
... def test_adjoint(case):
...     check_adjoint(case.op, case.x)
"""

from dataclasses import dataclass

import torch
try:
    from hypothesis import assume
    from hypothesis import strategies as st
except ImportError as e:  # pragma: no cover - exercised in an environment without hypothesis
    raise ImportError(
        "funclinop.testing.strategies needs hypothesis: pip install 'funclinop[testing]'"
    ) from e

from .registry import DTYPES, NotApplicable, input_for
from .trees import random_tree

__all__ = ["Case", "dtypes", "dims", "cases"]

DIM_NAMES = ("X", "Y", "Z")


@dataclass(frozen=True)
class Case:
    """A drawn operator ``op`` with input dims, dtype and a random input ``x``."""

    op: object
    dims: dict
    dtype: torch.dtype
    x: torch.Tensor
    seed: int


def dtypes(choices=DTYPES):
    return st.sampled_from(tuple(choices))


@st.composite
def dims(draw, min_dims=1, max_dims=3, min_size=0, max_size=6):
    """An ordered ``{dim: size}`` dict over X, Y, Z.

    Sizes 1 are common; a size 0 (when ``min_size`` allows it) is drawn for
    about one dict in eight, so that empty dims reach every operator that
    accepts them without crowding out the rest.
    """
    n = draw(st.integers(min_dims, max_dims))
    low = max(min_size, 1)
    sizes = draw(st.lists(st.one_of(st.just(1), st.integers(low, max_size)), min_size=n, max_size=n))
    if min_size <= 0 and draw(st.integers(0, 7)) == 0:
        sizes[draw(st.integers(0, n - 1))] = 0
    return dict(zip(DIM_NAMES, sizes))


@st.composite
def cases(draw, types=None, depth=None, dtype_choices=DTYPES, min_size=0, batch=()):
    """A random operator (a leaf when ``depth == 0``, else a tree of that depth)."""
    types = tuple(types) if types is not None else None
    dtype = draw(dtypes(dtype_choices))
    d = draw(dims(min_size=min_size))
    depth = draw(st.integers(0, 3)) if depth is None else depth
    seed = draw(st.integers(0, 2**31 - 1))
    try:
        op = random_tree(seed, dtype, d, depth, types)
    except NotApplicable:
        assume(False)
    x = input_for(torch.Generator().manual_seed(seed + 1), d, dtype, batch)
    return Case(op, d, dtype, x, seed)
