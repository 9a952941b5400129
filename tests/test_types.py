"""The package type-checks: mypy (default mode) on funclinop/ finds no error.

Operators are dataclasses built through ``typing.dataclass_transform``, so
the checker sees each operator's generated ``__init__`` and the annotated
public API (``py.typed`` is shipped).
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error():
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_py_typed_is_shipped():
    import funclinop

    assert (pathlib.Path(funclinop.__file__).parent / "py.typed").exists()
