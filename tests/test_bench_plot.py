"""The benchmark scripts' --plot option: a PNG of their timing tables."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _timing import Timing, plot_timings  # noqa: E402


def test_plot_timings_writes_a_png_with_one_panel_per_table(tmp_path):
    pytest.importorskip("matplotlib")
    fast = Timing({"torch": [1.0, 1.1, 0.9], "funclinop": [2.0, 2.1, 1.9]})
    spread = Timing({"a": [1.0, 1.0], "b": [1000.0, 1200.0], "c": [5e4, 5e4]})  # log scale
    path = tmp_path / "t.png"
    plot_timings(path, [("fast", fast), ("spread", spread), ("again", fast)], "title", "machine")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from matplotlib import image

    height, width = image.imread(path).shape[:2]
    assert width > height  # two panels side by side, two rows
