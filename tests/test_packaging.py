"""What a user of the installed package sees: version, lazy submodules, the
documented hypothesis example run in a project of its own."""

import re
import subprocess
import sys
from pathlib import Path

import funclinop as fl

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_version_comes_from_the_package_metadata():
    from importlib import metadata

    assert fl.__version__ == metadata.version("funclinop")


def test_testing_is_reachable_without_a_separate_import():
    assert callable(fl.testing.check_adjoint)


def test_the_documented_property_test_passes_in_a_users_project(tmp_path):
    """The example of docs/testing.md, with hypothesis' default settings (no
    conftest, no profile): it must pass as written."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "testing.md").read_text(), re.S)
    example = next(b for b in blocks if "@given" in b)
    (tmp_path / "test_user.py").write_text(example)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def test_the_readme_example_runs():
    readme = (DOCS.parent / "README.md").read_text()
    block = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    torch = scope["torch"]
    assert scope["y"].shape == (8, int(scope["mask"].sum()))
    torch.testing.assert_close(scope["B"](scope["x"]), scope["A"](scope["x"]))
