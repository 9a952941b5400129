"""How operators and tiles display: text trees, the one-line form, HTML, tile grids."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import funclinop as fl
import funclinop.testing.factories  # noqa: F401  (fills the registry)
from funclinop import display
from funclinop.dims import named
from funclinop.testing.registry import FACTORIES, NotApplicable


def sense(coils=8, n=64):
    """The README's SENSE operator, with a fixed mask (every third column: 22 × 64 samples)."""
    maps = torch.randn(coils, n, n, dtype=torch.complex64)
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[:, ::3] = True
    S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
    F = fl.FFT(2, batch_shape=("C",), centered=True)
    P = fl.Sampling.from_mask(mask, input_shape=("Kx", "Ky"), batch_shape=("C",))
    return P @ F @ S


SENSE = """\
Chain((Nx, Ny) -> (C, M))
  Dense((Nx, Ny) -> (C, Nx, Ny), weight=complex64[8, 64, 64] @cpu)
  FFT((C, Nx, Ny) -> (C, Kx, Ky), grid=(Nx, Ny), centered)
  Sampling((C, Kx, Ky) -> (C, M), input_size=(64, 64), flat_idx=int64[1408] @cpu)"""


def test_sense_repr():
    A = sense()
    assert repr(A) == SENSE
    assert str(A) == SENSE


def test_sense_compact():
    assert str(fl.show(sense(), compact=True)) == (
        "Chain(Dense(weight=complex64[8, 64, 64] @cpu), FFT(grid=(Nx, Ny), centered), "
        "Sampling(input_size=(64, 64), flat_idx=int64[1408] @cpu)) : (Nx, Ny) -> (C, M)")


def test_batched_stacked_repr():
    B = fl.create_batched_linop(sense(), fl.BatchSpec({"C": 2}))
    assert repr(B) == """\
VmapTiles((Nx, Ny) -> (C, M), 4 tiles stacked along C (2 each))
  Chain((Nx, Ny) -> (C, M))
    Dense((Nx, Ny) -> (C, Nx, Ny), weight=complex64[×4, 2, 64, 64] @cpu)
    FFT((C, Nx, Ny) -> (C, Kx, Ky), grid=(Nx, Ny), centered)
    Sampling((C, Kx, Ky) -> (C, M), input_size=(64, 64), flat_idx=int64[1408] @cpu)"""


def test_batched_looped_repr():
    """Equal tiles are shown once, with where they sit and how many there are."""
    B = fl.create_batched_linop(sense(), fl.BatchSpec({"C": 3}, stack=False))
    assert repr(B) == """\
Concat((Nx, Ny) -> (C, M), odim=C)
  C[0:6] Chain((Nx, Ny) -> (C, M))  × 2
    Dense((Nx, Ny) -> (C, Nx, Ny), weight=complex64[3, 64, 64] @cpu)
    FFT((C, Nx, Ny) -> (C, Kx, Ky), grid=(Nx, Ny), centered)
    Sampling((C, Kx, Ky) -> (C, M), input_size=(64, 64), flat_idx=int64[1408] @cpu)
  C[6:8] Chain((Nx, Ny) -> (C, M))
    Dense((Nx, Ny) -> (C, Nx, Ny), weight=complex64[2, 64, 64] @cpu)
    FFT((C, Nx, Ny) -> (C, Kx, Ky), grid=(Nx, Ny), centered)
    Sampling((C, Kx, Ky) -> (C, M), input_size=(64, 64), flat_idx=int64[1408] @cpu)"""


def test_batched_two_specs_repr():
    """Looped blocks of stacked tiles; slices are in the whole operator's coordinates."""
    B = fl.create_batched_linop(sense(coils=8, n=8), [fl.BatchSpec({"C": 4}, stack=False), fl.BatchSpec({"C": 2})])
    assert repr(B) == """\
Concat((Nx, Ny) -> (C, M), odim=C)
  C[0:8] VmapTiles((Nx, Ny) -> (C, M), 2 tiles stacked along C (2 each))  × 2
    Chain((Nx, Ny) -> (C, M))
      Dense((Nx, Ny) -> (C, Nx, Ny), weight=complex64[×2, 2, 8, 8] @cpu)
      FFT((C, Nx, Ny) -> (C, Kx, Ky), grid=(Nx, Ny), centered)
      Sampling((C, Kx, Ky) -> (C, M), input_size=(8, 8), flat_idx=int64[24] @cpu)"""
    B = fl.create_batched_linop(sense(coils=4, n=8), [fl.BatchSpec({"C": 2}, stack=False),
                                                      fl.BatchSpec({"C": 1}, stack=False)])
    # a collapsed run shows its first member: its blocks sit at C[0:2] of the whole
    assert repr(B) == """\
Concat((Nx, Ny) -> (C, M), odim=C)
  C[0:4] Concat((Nx, Ny) -> (C, M), odim=C)  × 2
    C[0:2] Chain((Nx, Ny) -> (C, M))  × 2
      Dense((Nx, Ny) -> (C, Nx, Ny), weight=complex64[1, 8, 8] @cpu)
      FFT((C, Nx, Ny) -> (C, Kx, Ky), grid=(Nx, Ny), centered)
      Sampling((C, Kx, Ky) -> (C, M), input_size=(8, 8), flat_idx=int64[24] @cpu)"""
    A = fl.Dense(torch.zeros(4, 3), ("C", "N"), ("N",), ("C",))
    B = fl.create_batched_linop(A, [fl.BatchSpec({"C": 2}, stack=False), fl.BatchSpec({"C": 1}, stack=False)])
    B = fl.Concat(*B.linops, fl.Dense(torch.zeros(1, 3), ("C", "N"), ("N",), ("C",)), odim="C")
    assert [line.split(" Dense")[0].strip() for line in repr(B).splitlines()[1:]] == [
        "C[0:4] Concat((N) -> (C), odim=C)  × 2", "C[0:2]", "C[4:5]"]


def test_stacked_tiles_show_no_sizes_inside():
    """Leaves inside stacked tiles carry the tile axis: sizes and split kinds are
    shown on the stacking node, not read from the operators inside."""
    B = fl.create_batched_linop(sense(coils=8, n=8), fl.BatchSpec({"C": 2}))
    text = _check_html(fl.show(B, split_kinds=True)._repr_html_())
    assert "(Nx=8, Ny=8) → (C=8, M=24)" in text
    assert "Dense (Nx, Ny) → (C, Nx, Ny)" in text
    assert text.count("split") == 1
    lines = str(fl.show(B, split_kinds=True)).splitlines()
    assert lines[0].endswith("  split Nx=none Ny=none C=out M=out")
    assert all("split" not in line for line in lines[1:])


def test_batched_on_devices_repr():
    """Tiles off the base device show their moves and where their leaves are."""
    B = fl.create_batched_linop(sense(coils=4, n=8), fl.BatchSpec({"C": 2}, device_matrix=["cpu", "meta"]))
    assert repr(B) == """\
Concat((Nx, Ny) -> (C, M), odim=C)
  C[0:2] Chain((Nx, Ny) -> (C, M))
    Dense((Nx, Ny) -> (C, Nx, Ny), weight=complex64[2, 8, 8] @cpu)
    FFT((C, Nx, Ny) -> (C, Kx, Ky), grid=(Nx, Ny), centered)
    Sampling((C, Kx, Ky) -> (C, M), input_size=(8, 8), flat_idx=int64[24] @cpu)
  C[2:4] Chain((Nx, Ny) -> (C, M))
    ToDevice((Nx, Ny) -> (Nx, Ny), cpu -> meta)
    Dense((Nx, Ny) -> (C, Nx, Ny), weight=complex64[2, 8, 8] @meta)
    FFT((C, Nx, Ny) -> (C, Kx, Ky), grid=(Nx, Ny), centered)
    Sampling((C, Kx, Ky) -> (C, M), input_size=(8, 8), flat_idx=int64[24] @meta)
    ToDevice((C, M) -> (C, M), meta -> cpu)"""


def test_leaf_repr_is_one_line():
    A = fl.FFT(2)
    assert repr(A) == "FFT((..., Nx, Ny) -> (..., Kx, Ky), grid=(Nx, Ny))"
    assert repr(A.H) == "IFFT((..., Kx, Ky) -> (..., Nx, Ny), grid=(Kx, Ky))"
    assert repr(fl.Pad((6, 6), (4, 4))) == "Pad((..., Nx, Ny) -> (..., Nx1, Ny1), size=(4, 4) -> (6, 6))"
    assert repr(fl.ToDevice("cpu", "meta")) == "ToDevice((...) -> (...), cpu -> meta)"


def _make(factory):
    """An operator from ``factory`` on the first of a few dim sets it accepts."""
    for dims in ({"A": 3, "B": 4}, {"A": 2, "B": 3}, {"A": 2, "B": 3, "C": 4}, {"A": 5}):
        try:
            return factory.make(torch.Generator().manual_seed(0), factory.dtypes[-1], dims, set())
        except NotApplicable:
            continue
    raise AssertionError(f"{factory.name} accepts none of the dim sets")


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_factory_displays(name):
    """Every operator type: the text, the one-line form and the HTML name every dim."""
    op = _make(FACTORIES[name])
    dims = named(op.ishape) + named(op.oshape)
    first = repr(op).splitlines()[0]
    assert f"{display._fmt(op.ishape)} -> {display._fmt(op.oshape)}" in first
    compact = str(fl.show(op, compact=True))
    assert "\n" not in compact
    page = op._repr_html_()
    _check_html(page)
    for d in dims:
        assert d in first and d in compact and d in page
    for view in (op.H, op.N):  # adjoints and normals display too
        assert repr(view).splitlines()[0].startswith(display._label(view))
        _check_html(view._repr_html_())


class _Tags(HTMLParser):
    """Checks that every tag is closed in order, and collects the text."""

    VOID = {"br", "hr", "img", "meta", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.text, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _check_html(page):
    p = _Tags()
    p.feed(page)
    p.close()
    assert p.stack == [], f"unclosed tags {p.stack}"
    assert set(p.tags) <= {"div", "details", "summary", "ul", "li", "b", "i", "span", "code"}
    return "".join(p.text)


def test_html_sense():
    A = sense()
    text = _check_html(A._repr_html_())
    for d in ("Nx", "Ny", "C", "Kx", "Ky", "M"):
        assert d in text
    assert "M=1408" in text and "Nx=64" in text  # sizes where the operator fixes them
    assert "complex64[8, 64, 64] @cpu" in text
    assert "256.0 KiB" in text  # the weight: 8 × 64 × 64 × 8 bytes
    assert "<details" in A._repr_html_() and "script" not in A._repr_html_()


def test_html_escapes():
    """Names that look like markup (a lambda's name) are escaped."""
    A = fl.FunctionLinop(lambda p, x: x, None, ishape=("N",), oshape=("N",))
    page = A._repr_html_()
    assert "&lt;lambda&gt;" in page and "<lambda>" not in page
    assert "<lambda>" in _check_html(page)


def test_html_split_kinds():
    page = fl.show(sense(), split_kinds=True)._repr_html_()
    text = _check_html(page)
    assert "C: out" in text and "Nx: diag" in text and "Kx: none" in text
    assert "split" not in _check_html(sense()._repr_html_())


def test_text_split_kinds():
    lines = str(fl.show(sense(), split_kinds=True)).splitlines()
    assert lines[0] == "Chain((Nx, Ny) -> (C, M))  split Nx=none Ny=none C=out M=out"
    assert lines[1].endswith("split Nx=diag Ny=diag C=out")


def test_memory_counts_shared_storage_once():
    W = torch.randn(4, 6, dtype=torch.complex64)
    assert display.nbytes([W, W.conj(), W[1:3]]) == W.nbytes  # views of one storage
    assert display.nbytes([W[0:2], W[2:4]]) == W.nbytes  # tiles add up to the whole
    assert display.nbytes([W[0:2]]) == W.nbytes // 2  # a tile holds its own block
    assert display.nbytes([W, W.clone()]) == 2 * W.nbytes
    D = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    text = _check_html(fl.Chain(D, D.H)._repr_html_())
    assert text.count(display.human(W.nbytes)) == 5  # the Chain, each Dense, each weight
    assert display.human(2 * W.nbytes) not in text


def test_memory_of_stacked_views():
    """Stacked tiles are a strided view of the weight: the weight's bytes, once."""
    A = sense(coils=4, n=8)
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}))
    weight = A.linops[0].weight
    summary = _check_html(B._repr_html_()).split("Chain")[0]
    assert display.human(weight.nbytes + A.linops[2].flat_idx.nbytes
                         + sum(t.nbytes for t in A.linops[2].idx)) in summary


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def test_display_runs_no_tensor_op():
    """Displays read metadata only: no tensor op runs (no copy, no read of the data)."""
    A = sense(coils=4, n=8)
    views = [A, A.H, A.N, fl.create_batched_linop(A, fl.BatchSpec({"C": 1})),
             fl.create_batched_linop(A, fl.BatchSpec({"C": 3}, stack=False))]
    split = fl.split_linop(A, {"C": 3})
    with _Ops() as mode:
        for op in views:
            repr(op), str(op), op._repr_html_(), str(fl.show(op, compact=True))
        for op in views[:3]:
            str(fl.show(op, split_kinds=True)), fl.show(op, split_kinds=True)._repr_html_()
        str(fl.show(split)), fl.show(split)._repr_html_(), str(fl.show(split[0]))
    assert mode.ops == []
    with _Ops() as mode:  # stacked tiles answer split_kind from a view of their first tile
        str(fl.show(views[3], split_kinds=True)), fl.show(views[3], split_kinds=True)._repr_html_()
    assert mode.ops and all(op.is_view for op in mode.ops)


def test_meta_leaves():
    A = fl.to(sense(), "meta")
    assert repr(A) == SENSE.replace("@cpu", "@meta")
    text = _check_html(A._repr_html_())
    assert "KiB" not in text and "@meta" in text  # meta tensors hold no memory


def _counting(monkeypatch):
    calls = []
    init = display._Node.__init__

    def counted(self, op, *args):
        calls.append(op)
        init(self, op, *args)

    monkeypatch.setattr(display._Node, "__init__", counted)
    return calls


def test_ten_thousand_nodes(monkeypatch):
    """A tree of 10,101 operators: each is visited once and equal neighbours collapse."""
    chains = [fl.Chain(*(fl.Diagonal(torch.full((2,), float(i * 100 + j)), ("N",)) for j in range(100)))
              for i in range(100)]
    A = fl.Add(*chains)
    calls = _counting(monkeypatch)
    assert repr(A) == ("Add((N) -> (N))\n"
                       "  Chain((N) -> (N))  × 100\n"
                       "    Diagonal((N) -> (N), weight=float32[2] @cpu)  × 100")
    assert len(calls) == 10101 and len({id(op) for op in calls}) == 10101
    calls.clear()
    page = A._repr_html_()
    assert len(calls) == 10101
    assert display.human(10000 * 2 * 4) in _check_html(page)


def test_deep_tree_and_max_depth():
    """Nesting deeper than Python's recursion limit displays, cut at max_depth."""
    D = fl.Diagonal(torch.ones(2), ("N",))
    op = D
    for _ in range(3000):
        op = fl.Concat(op, D, idim="N", odim="N")
    lines = repr(op).splitlines()
    assert len(lines) == 2 * display.MAX_DEPTH
    assert lines[display.MAX_DEPTH].strip() == "… 5986 operators below (max_depth=8)"
    short = str(fl.show(op, max_depth=2)).splitlines()
    assert short[2].strip() == "… 5998 operators below (max_depth=2)"
    assert "…" in str(fl.show(op, compact=True, max_depth=3))
    _check_html(fl.show(op, max_depth=4)._repr_html_())


def test_max_items():
    ops = [fl.Scalar(1.0, ("N",)) if k % 2 else fl.Identity(("N",)) for k in range(30)]
    lines = str(fl.show(fl.Add(*ops), max_items=5)).splitlines()
    assert len(lines) == 7 and lines[-1] == "  … 25 more"


def test_tile_grid_of_split():
    A = fl.Dense(torch.zeros(5, 4), ("C", "N"), ("N",), ("C",))
    assert str(fl.show(fl.split_linop(A, {"C": 2, "N": 3}))) == """\
3 × 2 tiles (split_linop)
  [0, 0] N[0:3] C[0:2]  Dense((N) -> (C), weight=float32[2, 3] @cpu)  @cpu
  [0, 1] N[3:4] C[0:2]  Dense((N) -> (C), weight=float32[2, 1] @cpu)  @cpu
  [1, 0] N[0:3] C[2:4]  Dense((N) -> (C), weight=float32[2, 3] @cpu)  @cpu
  [1, 1] N[3:4] C[2:4]  Dense((N) -> (C), weight=float32[2, 1] @cpu)  @cpu
  [2, 0] N[0:3] C[4:5]  Dense((N) -> (C), weight=float32[1, 3] @cpu)  @cpu
  [2, 1] N[3:4] C[4:5]  Dense((N) -> (C), weight=float32[1, 1] @cpu)  @cpu"""


def test_tile_grid_alone_shows_sizes():
    """Tiles do not record their slices: a grid of tiles alone shows their sizes."""
    A = fl.Dense(torch.zeros(5, 4), ("C", "N"), ("N",), ("C",))
    tiles, _, _ = fl.split_linop(A, {"C": 3})
    assert str(fl.show(tiles)) == """\
2 tiles
  [0] N=4 C=3  Dense((N) -> (C), weight=float32[3, 4] @cpu)  @cpu
  [1] N=4 C=2  Dense((N) -> (C), weight=float32[2, 4] @cpu)  @cpu"""
    moved = fl.to(tiles, "meta")
    assert str(fl.show(moved)).endswith("@meta")


def test_tile_grid_of_nothing_split():
    A = fl.Dense(torch.zeros(5, 4), ("C", "N"), ("N",), ("C",))
    assert str(fl.show(fl.split_linop(A, {}))) == """\
1 tile (split_linop)
  [] Dense((N) -> (C), weight=float32[5, 4] @cpu)  @cpu"""


def test_tile_grid_html():
    tiles_in_out = fl.split_linop(sense(), {"C": 3})
    page = fl.show(tiles_in_out)._repr_html_()
    text = _check_html(page)
    assert "3 tiles (split_linop)" in text
    assert all(f"C[{a}:{b}]" in text for a, b in ((0, 3), (3, 6), (6, 8)))
    for d in ("Nx", "Ny", "C", "M"):
        assert d in text


def test_show_refuses():
    with pytest.raises(TypeError, match="show: expected a Linop"):
        fl.show(torch.ones(2))
    with pytest.raises(ValueError, match="max_depth"):
        fl.show(sense(), max_depth=0)
    tiles = fl.split_linop(sense(), {"C": 3})[0]
    with pytest.raises(ValueError, match="compact"):
        fl.show(tiles, compact=True)


def test_repr_pretty():
    class Printer:
        def __init__(self):
            self.out = []

        def text(self, s):
            self.out.append(s)

    p = Printer()
    sense()._repr_pretty_(p, False)
    assert p.out == [SENSE]
    p = Printer()
    fl.show(sense(), compact=True)._repr_pretty_(p, False)
    assert p.out == [str(fl.show(sense(), compact=True))]


def test_docs_example():
    """docs/display.md runs as written and prints what it says."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "display.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    printed = re.findall(r"```text\n(.*?)```", doc, re.S)[0]
    out = []
    exec(compile(code, "display.md", "exec"), {"print": lambda *a: out.append(" ".join(map(str, a)))})
    assert "\n".join(out) + "\n" == printed
