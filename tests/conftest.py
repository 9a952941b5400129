"""Fixtures shared by the example-based tests."""

import pytest


@pytest.fixture(scope="module")
def tl():
    """The reference implementation (torch-named-linops), or a skip where it is not installed."""
    return pytest.importorskip("torchlinops")
