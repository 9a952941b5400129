"""The demo runs end to end (small sizes) and its reconstruction beats the adjoint."""

import re

import pytest

from funclinop import demo


@pytest.mark.parametrize("trajectory", ["cartesian", "radial"])
def test_demo_reconstructs(trajectory, capsys):
    assert demo.main(["--size", "32", "--coils", "4", "--out", "", "--no-progress",
                      "--trajectory", trajectory]) == 0
    out = capsys.readouterr().out
    errors = re.search(r"NRMSE.*?: (?:zero-filled|density-compensated adjoint) ([\d.]+), CG ([\d.]+)", out)
    assert errors, out
    adjoint, cg = map(float, errors.groups())
    assert cg < adjoint, out
    assert re.search(r"adjoint check .* relative error ([\d.e+-]+)", out)
