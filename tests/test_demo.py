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


@pytest.mark.parametrize("args, message", [
    (["--size", "-4"], "--size: must be positive"),
    (["--coils", "0"], "--coils: must be positive"),
    (["--device", "tpu"], "--device: not a device"),
    (["--out", "/nonexistent/folder/x.png"], "--out: cannot write"),
])
def test_demo_refuses_bad_arguments_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        demo.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()[-1]) < 200


def test_demo_without_cuda_refuses_a_cuda_device(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SystemExit):
        demo.main(["--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err


def test_demo_figure_leaves_the_matplotlib_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    out = tmp_path / "demo.png"
    assert demo.main(["--size", "16", "--coils", "2", "--iters", "3", "--no-progress", "--out", str(out)]) == 0
    assert out.exists() and matplotlib.get_backend() == before
