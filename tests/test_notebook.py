"""Operators display in a real Jupyter kernel, and a tutorial runs there.

A notebook built here (the README's SENSE operator, its batched and looped
forms, ``fl.show`` of tiles, each the last expression of a cell) and the
"First operators" tutorial (converted with jupytext) are executed by
nbclient in one IPython kernel. The tests then read the executed notebooks:
each displayed object left a ``text/html`` output (a well-formed tree of
``<details>`` that names every class and dim) and a ``text/plain`` output
equal to its ``repr`` here, and no tutorial cell errored.

The kernel is the interpreter running the tests (a kernelspec written to a
temporary folder, whose ``argv`` is ``sys.executable``), started from an
empty folder with this checkout on ``PYTHONPATH``, with every Jupyter and
IPython folder (runtime, config, data, IPython profile) under a temporary
folder: nothing from the user's home or other kernelspecs is used. Kernel
start-up and every cell have a timeout, so a kernel that fails to start
fails the tests instead of hanging them. Without nbformat, nbclient or
ipykernel (the ``test`` extra has them) the module is skipped.
"""

import json
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (nbclient requires jupyter_client)
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorials" / "01_first_operators.py"
KERNEL = "funclinop-test-python"
TIMEOUT = 60  # seconds, for the kernel to start and for each cell

# The cells of the display notebook. The objects they display are built
# again here, from the same source, to compare with their repr.
SETUP = """\
import torch
import funclinop as fl

fl.__file__
"""
# the README's example operator, with a fixed mask (its repr shows the number of samples)
SENSE = """\
maps = torch.randn(8, 64, 64, dtype=torch.complex64)
mask = torch.zeros(64, 64, dtype=torch.bool)
mask[:, ::3] = True
S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
F = fl.FFT(2, batch_shape=("C",), centered=True)
P = fl.Sampling.from_mask(mask, input_shape=("Kx", "Ky"), batch_shape=("C",))
A = P @ F @ S
"""
SHOWN = {  # cell source (its last line is the displayed expression) -> classes shown
    SENSE + "A": {"Chain", "Dense", "FFT", "Sampling"},
    "B = fl.create_batched_linop(A, fl.BatchSpec({'C': 2}))\nB": {"VmapTiles", "Chain", "Dense", "FFT", "Sampling"},
    "L = fl.create_batched_linop(A, fl.BatchSpec({'C': 3}, stack=False))\nL": {"Concat", "Chain", "Dense", "FFT", "Sampling"},
    "tiles, ins, outs = fl.split_linop(A, {'C': 3})\nfl.show(tiles)": {"Chain", "Dense", "FFT", "Sampling"},
    "fl.show((tiles, ins, outs), split_kinds=True)": {"Chain", "Dense", "FFT", "Sampling"},
}
DIMS = ("Nx", "Ny", "C", "Kx", "Ky", "M")  # every dim of the operators above


def _kernel_spec(folder):
    """A kernelspec folder whose one kernel runs this interpreter's ipykernel."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (funclinop tests)",
        "language": "python",
    }))
    return spec.parent


def _display_notebook():
    cells = [SETUP, *SHOWN, "import funclinop\nfunclinop.__file__"]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


def _tutorial_notebook():
    jupytext = pytest.importorskip("jupytext")
    return jupytext.read(TUTORIAL)


def _run(client, nb):
    """Execute the code cells of ``nb`` in ``client``'s running kernel, in place."""
    client.nb = nb
    client.reset_execution_trackers()
    for index, cell in enumerate(nb.cells):
        client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
    return nb


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """``{"display": notebook, "tutorial": notebook or None}``, executed in one kernel."""
    tmp = tmp_path_factory.mktemp("jupyter")
    env = {
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_PATH": str(tmp / "specs"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    cwd = tmp / "cwd"  # an empty folder: the kernel imports this checkout through PYTHONPATH
    cwd.mkdir()
    specs = _kernel_spec(tmp / "specs")
    try:
        tutorial = _tutorial_notebook()
    except pytest.skip.Exception:
        tutorial = None
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():  # the connection file is written by this process
            mp.setenv(k, v)
        km = AsyncKernelManager(
            kernel_name=KERNEL,
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)], ensure_native_kernel=False),
        )
        client = nbclient.NotebookClient(
            nbformat.v4.new_notebook(), km=km, kernel_name=KERNEL, timeout=TIMEOUT,
            startup_timeout=TIMEOUT, shutdown_kernel="immediate", allow_errors=True,
        )
        out = {}
        # cleanup_kc: stop the client and shut the kernel down at the end, even on an error
        with client.setup_kernel(env=dict(os.environ), cwd=str(cwd), cleanup_kc=True):
            out["tutorial"] = None if tutorial is None else _run(client, tutorial)  # a fresh kernel
            _run(client, nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%reset -f")]))
            out["display"] = _run(client, _display_notebook())
    return out


@pytest.fixture(scope="module")
def here():
    """The displayed objects, built in this process from the cells' source."""
    scope = {}
    exec(SETUP, scope)
    values = []
    for source in SHOWN:
        *body, last = source.splitlines()
        exec("\n".join(body), scope)
        values.append(eval(last, scope))
    return values


class _Tree(HTMLParser):
    """Start tags, the text inside ``<b>``, all text; records a closing tag
    that does not close the innermost open element."""

    VOID = {"br", "hr", "img", "input", "meta", "link", "wbr"}

    def __init__(self):
        super().__init__()
        self.open, self.tags, self.bold, self.text, self.mismatched = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.mismatched.append(tag)

    def handle_data(self, data):
        self.text.append(data)
        if "b" in self.open:
            self.bold.append(data.strip())


def _parse(markup):
    tree = _Tree()
    tree.feed(markup)
    tree.close()
    return tree


def _errors(nb):
    return [(i, o.get("ename"), o.get("evalue"), "\n".join(o.get("traceback", []))[-2000:])
            for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


def _result(cell):
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert len(results) == 1, cell.outputs
    return results[0].data


def test_the_display_notebook_ran_without_errors(executed):
    assert _errors(executed["display"]) == []


def test_the_kernel_imports_this_checkout(executed):
    cells = executed["display"].cells
    for cell in (cells[0], cells[-1]):
        path = Path(eval(_result(cell)["text/plain"]))  # a str's repr
        assert path.resolve() == (ROOT / "funclinop" / "__init__.py").resolve()


@pytest.mark.parametrize("k", range(len(SHOWN)), ids=[s.splitlines()[-1] for s in SHOWN])
def test_a_displayed_operator_has_html_and_its_repr_as_text(executed, here, k):
    data = _result(executed["display"].cells[1 + k])
    assert data["text/plain"] == repr(here[k])
    tree = _parse(data["text/html"])
    assert tree.mismatched == [] and tree.open == [], "unbalanced HTML"
    assert {"details", "summary"} <= set(tree.tags)
    assert set(SHOWN[list(SHOWN)[k]]) <= set(tree.bold)
    text = "".join(tree.text)
    for d in DIMS:
        assert re.search(rf"\b{d}\b", text), d


def test_a_tutorial_runs_in_a_kernel_without_errors(executed):
    pytest.importorskip("jupytext")
    nb = executed["tutorial"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code)
    assert _errors(nb) == []
