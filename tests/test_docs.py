"""Every documented example runs: the ```python blocks of docs/*.md and
README.md, and the tutorials under docs/tutorials/.

The rule for a page (keep it when writing docs): its ```python blocks run in
order, top to bottom, in one fresh namespace, so a block may use names that
an earlier block *of the same page* defined, and nothing else (each page
starts with its own imports). Blocks that are not meant to run use another
fence language: ```bash for shell commands, ```text for output and
signatures. A fence without a language is refused, so that no example
escapes the test by accident.

Functions a block defines are defined, not called: the property test of
docs/testing.md is run as a user would run it by tests/test_packaging.py.

Each tutorial (a jupytext percent-format script) runs as a script in a
subprocess, from an empty folder (no conftest, hypothesis' default settings:
a user's own project), with matplotlib's Agg backend where matplotlib is
installed.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from funclinop.testing import FACTORIES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
TUTORIALS = sorted((DOCS / "tutorials").glob("*.py"))

# an opening fence (any indentation) with its language, and the matching close
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


def blocks(path, lang="python"):
    """(line number, dedented code) of the fenced blocks in ``lang``."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        if m.group("lang").strip() != lang:
            continue
        indent = m.group("indent")
        body = "".join(line[len(indent):] if line.startswith(indent) else line
                       for line in m.group("body").splitlines(keepends=True))
        out.append((text.count("\n", 0, m.start("body")) + 1, body))
    return out


def _id(path):
    return str(path.relative_to(ROOT))


@pytest.fixture
def registry_restored():
    """A page may register a factory (docs/testing.md); the suite's registry stays as it was."""
    saved = dict(FACTORIES)
    yield
    FACTORIES.clear()
    FACTORIES.update(saved)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_fence_names_its_language(page):
    for m in FENCE.finditer(page.read_text()):
        assert m.group("lang").strip(), (
            f"{_id(page)}: a ``` fence without a language; use python (run by this test), "
            f"bash or text"
        )


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=_id)
def test_the_python_blocks_of_a_page_run_in_order(page, registry_restored):
    scope = {"__name__": f"docs_{page.stem}"}
    for line, code in blocks(page):
        # pad with newlines so that a traceback gives the line in the page
        exec(compile("\n" * (line - 1) + code, str(page), "exec"), scope)


def test_the_extraction_finds_indented_blocks_and_skips_other_languages(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("a\n\n```python\nx = 1\n```\n\n- item\n\n  ```python\n  y = x + 1\n  ```\n\n```bash\nls\n```\n")
    assert blocks(page) == [(4, "x = 1\n"), (10, "y = x + 1\n")]
    assert blocks(page, "bash") == [(14, "ls\n")]


def test_there_is_a_tutorial_for_each_topic():
    assert len(TUTORIALS) >= 4


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=_id)
def test_the_tutorial_runs_as_a_script(tutorial, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    run = subprocess.run(
        [sys.executable, str(tutorial)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
