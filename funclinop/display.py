"""How operators and tiles look: an indented text tree, a one-line form, and HTML.

``repr(A)`` (and ``str(A)``) is a tree with one operator per line: its class,
``(ishape) -> (oshape)``, the options that matter and its tensor leaves as
``dtype[shape] @device``. Equal-structure neighbours (the tiles of a batched
operator) are shown once, marked ``× n``; trees deeper than ``max_depth``
end in a ``…`` line. In Jupyter (and marimo) an operator renders as a
collapsible HTML tree with the size of every dim and the memory the leaves
hold; IPython's console prints the text tree.

:func:`show` gives the same displays with options (the one-line form, the
split kind of every dim, the limits) and also shows a grid of tiles
(``split_linop``'s output). Displays only read metadata (dtypes, shapes,
strides, storages): they never touch tensor data, so they are cheap for a
large operator and work on ``meta`` tensors (``split_kinds=True`` asks each
operator, and stacked tiles answer from a view of their first tile).

>>> import torch, funclinop as fl
>>> A = fl.Dense(torch.zeros(8, 4), ("C", "N"), ("N",), ("C",))
>>> A
Dense((N) -> (C), weight=float32[8, 4] @cpu)
>>> A.H @ A
Chain((N) -> (N))
  Dense((N) -> (C), weight=float32[8, 4] @cpu)
  Dense((C) -> (N), weight=float32[8, 4] @cpu)
>>> print(fl.show(A.H @ A, compact=True))
Chain(Dense(weight=float32[8, 4] @cpu), Dense(weight=float32[8, 4] @cpu)) : (N) -> (N)
"""

import dataclasses
import functools
import html

import torch

from .dims import named
from .linop import Linop, _fmt

__all__ = ["show", "Display", "options", "block_slices", "stacked_leaves"]

MAX_DEPTH = 8  # operator levels shown before a "…" line
MAX_ITEMS = 24  # lines shown per node (after collapsing equal neighbours), and tiles per grid
SHAPE_FIELDS = frozenset({
    "ishape", "oshape", "ioshape", "batch_shape", "weightshape", "in_shape", "out_shape",
    "input_shape", "output_shape", "in_grid_shape", "out_grid_shape", "array_shape",
    "blocks_shape", "sizes",
})


# ---- hooks: what an operator type shows ------------------------------------------------
@functools.singledispatch
def options(op):
    """The options of ``op`` worth showing, as short strings.

    Default: every static field that is not a shape (those are in
    ``(ishape) -> (oshape)``) and differs from its default; a true flag
    shows as its name. Register a function for an operator type to show
    something else.
    """
    out = []
    for name, default in _option_fields(type(op)):
        v = getattr(op, name, None)
        if default is not dataclasses.MISSING and _same(v, default):
            continue
        if v is None or v is False or v == ():
            continue
        out.append(name if v is True else f"{name}={value(v)}")
    return out


@functools.lru_cache(maxsize=None)
def _option_fields(cls):
    """``(name, default)`` of the static fields that are options, not shapes."""
    return tuple((f.name, f.default) for f in dataclasses.fields(cls)
                 if f.repr and f.metadata.get("static") and f.name not in SHAPE_FIELDS)


@functools.singledispatch
def block_slices(op):
    """For a block operator, one ``((dim, start, stop), ...)`` per child operator
    (where it sits along its block dims); None for others."""
    return None


@functools.singledispatch
def stacked_leaves(op):
    """For an operator holding stacked tiles: ``(count, ids)``, the number of
    tiles and the ``id`` of every leaf that carries them on a leading axis."""
    return None


def _same(a, b):
    try:
        return bool(a == b)
    except Exception:  # a tensor default, or a value that does not compare
        return a is b


def value(v, limit=40):
    """A short text for a static value: names without quotes, devices by name."""
    if isinstance(v, str):
        text = v
    elif isinstance(v, torch.device):
        text = str(v)
    elif isinstance(v, tuple):  # dim names as in shapes, (Nx, Ny); (4,) stays a tuple
        comma = "," if len(v) == 1 and not isinstance(v[0], str) else ""
        text = "(" + ", ".join(value(t, limit) for t in v) + comma + ")"
    elif callable(v) and hasattr(v, "__name__"):
        text = v.__name__
    else:
        text = repr(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _register_builtin():
    from .compose import Chain
    from .concat import Concat, Stack
    from .device import ToDevice
    from .ops import FFT, Crop, Pad, Rearrange

    @options.register
    def _(op: FFT):
        return [f"grid={value(op._grids[0])}"] + (["centered"] if op.centered else [])

    @options.register
    def _(op: Pad):
        return [f"size={value(op.im_size)} -> {value(op.pad_im_size)}"]

    @options.register
    def _(op: Crop):
        return [f"size={value(op.im_size)} -> {value(op.crop_im_size)}"]

    @options.register
    def _(op: Rearrange):
        return [f"'{op.ipattern} -> {op.opattern}'"]

    @options.register
    def _(op: ToDevice):
        return [f"{op.idevice} -> {op.odevice}"]

    @options.register
    def _(op: Chain):
        return []

    @options.register
    def _(op: Concat):
        return [f"{k}={v}" for k, v in (("idim", op.idim), ("odim", op.odim)) if v is not None]

    @block_slices.register
    def _(op: Concat):
        cols = [_offsets(op.idim, op.isizes), _offsets(op.odim, op.osizes)]
        if op.idim == op.odim:
            cols = cols[:1]
        cols = [c for c in cols if c is not None]
        return [tuple(c[k] for c in cols) for k in range(len(op.linops))]

    @block_slices.register
    def _(op: Stack):
        dims = [d for d in dict.fromkeys((op._idim, op._odim)) if d is not None]
        return [tuple((d, k, k + 1) for d in dims) for k in range(len(op.linops))]


def _offsets(dim, sizes):
    if dim is None:
        return None
    out, start = [], 0
    for n in sizes:
        out.append((dim, start, start + n))
        start += n
    return out


# ---- the summary tree: one pass over the operator ------------------------------------------
class _Node:
    __slots__ = ("op", "label", "opts", "tensors", "kids", "slots", "sig", "count", "in_stack")

    def __init__(self, op, stacked, in_stack=False):
        self.op = op
        # inside stacked tiles, leaves carry the tile axis: sizes and split kinds
        # asked of these operators would misread it (the stacking node has them)
        self.in_stack = in_stack
        self.label = _label(op)
        self.opts = tuple(options(op))
        self.tensors = []  # (field name, text, tensor, shown)
        self.kids = []  # child _Nodes, in order
        self.slots = block_slices(op)
        self.sig = None  # structure id: equal ids, equal display
        self.count = 1  # operators in the subtree
        for name, v, shown in _fields(op):
            _collect(self, name, v, stacked, shown)


def _label(op):
    return op._name().split("(", 1)[0]  # FFT names its inverse IFFT


def _fields(op):
    d, hidden = op.__dict__, _hidden(type(op))
    return [(n, d.get(n), n not in hidden) for n in getattr(type(op), "_children", ())]


@functools.lru_cache(maxsize=None)
def _hidden(cls):
    """Fields declared with ``repr=False``: their tensors count in the memory
    but are not listed."""
    return frozenset(f.name for f in dataclasses.fields(cls) if not f.repr)


def _collect(node, name, v, stacked, shown):
    """Tensors of a field go to ``node.tensors``; operators are marked for a visit."""
    if isinstance(v, torch.Tensor):
        node.tensors.append((name, tensor_text(v, stacked.get(id(v))), v, shown))
    elif isinstance(v, Linop):
        node.kids.append(v)
    elif isinstance(v, (tuple, list)):
        for k, t in enumerate(v):
            _collect(node, name if isinstance(t, Linop) else f"{name}[{k}]", t, stacked, shown)
    elif isinstance(v, dict):
        for k, t in v.items():
            _collect(node, f"{name}[{k!r}]", t, stacked, shown)
    elif v is not None:  # another pytree (a FunctionLinop's params): its tensors
        import optree

        for k, t in enumerate(optree.tree_leaves(v)):
            if isinstance(t, torch.Tensor):
                node.tensors.append((f"{name}.{k}", tensor_text(t, stacked.get(id(t))), t, shown))


def tensor_text(t, count=None):
    """``dtype[shape] @device``; a stacked leaf shows its tiles as ``×count``."""
    dtype = str(t.dtype).replace("torch.", "")
    shape = [str(n) for n in t.shape]
    if count is not None and shape:
        shape[0] = f"×{count}"
    return f"{dtype}[{', '.join(shape)}] @{t.device}"


def _summarize(root):
    """The summary of every operator under ``root``, each visited once
    (no recursion: a deep tree does not reach Python's recursion limit)."""
    nodes, stack = [], [(root, None, {})]
    while stack:
        op, parent, outer = stack.pop()
        inner = stacked_leaves(op)
        stacked = outer if inner is None else {**outer, **{i: inner[0] for i in inner[1]}}
        node = _Node(op, stacked, bool(outer))
        nodes.append(node)
        if parent is not None:
            parent.kids.append(node)
        children, node.kids = node.kids, []
        stack.extend((c, node, stacked) for c in reversed(children))
    interned = {}
    for node in reversed(nodes):  # children before their parent
        shown = tuple((t[0], t[1]) for t in node.tensors if t[3])
        kids = tuple((k.sig, _extents(k, node, i)) for i, k in enumerate(node.kids))
        key = (node.label, node.op.ishape, node.op.oshape, node.opts, shown, kids)
        node.sig = interned.setdefault(key, len(interned))
        node.count = 1 + sum(k.count for k in node.kids)
    return nodes[0]


def _extents(kid, parent, i):
    slots = parent.slots
    return None if slots is None or i >= len(slots) else tuple(b - a for _, a, b in slots[i])


def _runs(node):
    """The children of ``node`` as ``(first index, count)``: equal neighbours (same
    structure, same block sizes) form one run."""
    runs = []
    for i, kid in enumerate(node.kids):
        if runs and node.kids[runs[-1][0]].sig == kid.sig and \
                _extents(node.kids[runs[-1][0]], node, runs[-1][0]) == _extents(kid, node, i):
            runs[-1][1] += 1
        else:
            runs.append([i, 1])
    return runs


def _slot_text(node, i, n, offsets):
    """Where children ``i .. i+n-1`` sit along the block dims, in the
    coordinates of the root (``offsets``: where ``node`` sits): ``C[0:6]``."""
    if node.slots is None or i + n > len(node.slots):
        return ""
    parts = []
    for (d, a, _), (_, _, last) in zip(node.slots[i], node.slots[i + n - 1]):
        o = offsets.get(d, 0)
        parts.append(f"{d}[{o + a}:{o + last}]")
    return " ".join(parts) + " "


def _kid_offsets(node, i, offsets):
    """Where child ``i`` sits: a block of a block is placed in the root's coordinates."""
    if node.slots is None or i >= len(node.slots):
        return offsets
    return {**offsets, **{d: offsets.get(d, 0) + a for d, a, _ in node.slots[i]}}


# ---- text ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Style:
    split_kinds: bool = False
    max_depth: int = MAX_DEPTH
    max_items: int = MAX_ITEMS


def _line(node, style):
    op = node.op
    args = [f"{_fmt(op.ishape)} -> {_fmt(op.oshape)}", *node.opts]
    args += [f"{name}={text}" for name, text, _, shown in node.tensors if shown]
    return f"{node.label}({', '.join(args)})"


def _split_text(node, style):
    if not style.split_kinds or node.in_stack:
        return ""
    return "  split " + " ".join(f"{d}={k or 'none'}" for d, k in _kinds(node.op))


def _kinds(op):
    dims = dict.fromkeys(named(op.ishape) + named(op.oshape))
    return [(d, op.split_kind(d)) for d in dims]


def _text_lines(node, style, depth, indent, prefix, times, out, offsets):
    suffix = f"  × {times}" if times > 1 else ""
    out.append(f"{indent}{prefix}{_line(node, style)}{suffix}{_split_text(node, style)}")
    if not node.kids:
        return
    indent += "  "
    if depth + 1 >= style.max_depth:
        out.append(f"{indent}… {node.count - 1} operators below (max_depth={style.max_depth})")
        return
    runs = _runs(node)
    for i, n in runs[: style.max_items]:
        _text_lines(node.kids[i], style, depth + 1, indent, _slot_text(node, i, n, offsets), n, out,
                    _kid_offsets(node, i, offsets))
    if len(runs) > style.max_items:
        rest = sum(n for _, n in runs[style.max_items:])
        out.append(f"{indent}… {rest} more")


def _compact(node, style, depth, offsets):
    args = list(node.opts) + [f"{name}={text}" for name, text, _, shown in node.tensors if shown]
    if node.kids and depth + 1 >= style.max_depth:
        args.append("…")
    elif node.kids:
        for i, n in _runs(node):
            kid = _compact(node.kids[i], style, depth + 1, _kid_offsets(node, i, offsets))
            args.append(_slot_text(node, i, n, offsets) + kid + (f" × {n}" if n > 1 else ""))
    return f"{node.label}({', '.join(args)})"


def text(op, *, compact=False, split_kinds=False, max_depth=MAX_DEPTH, max_items=MAX_ITEMS):
    """The text display of an operator (what ``repr`` gives)."""
    style = _Style(split_kinds, max_depth, max_items)
    root = _summarize(op)
    if compact:
        return f"{_compact(root, style, 0, {})} : {_fmt(op.ishape)} -> {_fmt(op.oshape)}"
    out = []
    _text_lines(root, style, 0, "", "", 1, out, {})
    return "\n".join(out)


# ---- memory ----------------------------------------------------------------------------
def _storage(t):
    """``(key, start byte, stop byte)`` of the storage ``t`` reads; tensors
    without a real storage (meta) hold no memory."""
    if t.device.type == "meta":
        return None
    try:
        ptr = t.untyped_storage().data_ptr()
        lo = t.storage_offset()
        hi = lo + (sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1 if t.numel() else 0)
        size = t.element_size()
        return (t.device, ptr if ptr else id(t)), lo * size, hi * size
    except (RuntimeError, NotImplementedError):  # inside a transform, sparse: its own bytes
        return (t.device, id(t)), 0, t.numel() * t.element_size()


def nbytes(tensors):
    """Bytes held by ``tensors``, counting what several of them share once."""
    spans = {}
    for t in tensors:
        s = _storage(t)
        if s is not None:
            spans.setdefault(s[0], []).append(s[1:])
    total = 0
    for parts in spans.values():
        end = None
        for lo, hi in sorted(parts):
            if end is None or lo >= end:
                total += hi - lo
                end = hi
            elif hi > end:
                total += hi - end
                end = hi
    return total


def _subtree_tensors(node):
    stack = [node]
    while stack:
        n = stack.pop()
        for t in n.tensors:
            yield t[2]
        stack.extend(n.kids)


def human(n):
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return None  # unreachable


# ---- HTML ------------------------------------------------------------------------------
_STYLE = ("font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; "
          "line-height: 1.5")
_LIST = "list-style: none; margin: 0; padding-left: 1.4em"
_DIM = "color: #888"


def _e(s):
    return html.escape(str(s), quote=True)


def _dims_html(node, shape):
    parts = []
    for d in shape:
        n = None if d == "..." or node.in_stack else node.op.size(d)
        parts.append(_e(d) + (f"<span style='{_DIM}'>={n}</span>" if n is not None else ""))
    return "(" + ", ".join(parts) + ")"


def _summary_html(node, prefix, times, style):
    op = node.op
    mem = nbytes(_subtree_tensors(node))
    bits = [f"<span style='{_DIM}'>{_e(prefix)}</span>" if prefix else "",
            f"<b>{_e(node.label)}</b> {_dims_html(node, op.ishape)} → {_dims_html(node, op.oshape)}"]
    if node.opts:
        bits.append(f" <i>{_e(', '.join(node.opts))}</i>")
    if times > 1:
        bits.append(f" <b>× {times}</b>")
    if mem:
        bits.append(f" <span style='{_DIM}'>{_e(human(mem))}</span>")
    return "".join(bits)


def _body_html(node, style, depth, offsets):
    items = []
    for name, t_text, t, shown in node.tensors:
        if not shown:
            continue
        mem = nbytes([t])
        items.append(f"<li>{_e(name)}: {_e(t_text)}"
                     + (f" <span style='{_DIM}'>{_e(human(mem))}</span>" if mem else "") + "</li>")
    if style.split_kinds and not node.in_stack:
        kinds = ", ".join(f"{d}: {k or 'none'}" for d, k in _kinds(node.op))
        items.append(f"<li><span style='{_DIM}'>split</span> {_e(kinds)}</li>")
    if node.kids and depth + 1 >= style.max_depth:
        items.append(f"<li>… {node.count - 1} operators below (max_depth={style.max_depth})</li>")
    elif node.kids:
        runs = _runs(node)
        for i, n in runs[: style.max_items]:
            kid = _node_html(node.kids[i], style, depth + 1, _slot_text(node, i, n, offsets), n,
                             _kid_offsets(node, i, offsets))
            items.append(f"<li>{kid}</li>")
        if len(runs) > style.max_items:
            items.append(f"<li>… {sum(n for _, n in runs[style.max_items:])} more</li>")
    return items


def _node_html(node, style, depth, prefix="", times=1, offsets=None, opened=None):
    summary = _summary_html(node, prefix, times, style)
    items = _body_html(node, style, depth, offsets or {})
    if not items:
        return f"<div>{summary}</div>"
    opened = " open" if (depth < 2 if opened is None else opened) else ""
    return (f"<details{opened}><summary>{summary}</summary>"
            f"<ul style='{_LIST}'>{''.join(items)}</ul></details>")


def html_tree(op, *, split_kinds=False, max_depth=MAX_DEPTH, max_items=MAX_ITEMS):
    """The HTML display of an operator (what Jupyter shows): nested ``<details>``."""
    style = _Style(split_kinds, max_depth, max_items)
    return f"<div class='funclinop' style='{_STYLE}'>{_node_html(_summarize(op), style, 0)}</div>"


# ---- tiles -----------------------------------------------------------------------------
def _is_grid(x):
    if isinstance(x, Linop):
        return True
    return type(x) is tuple and len(x) > 0 and all(_is_grid(t) for t in x)


def _is_index_grid(x):
    if type(x) is tuple and x[:1] == (Ellipsis,):
        return True
    return type(x) is tuple and len(x) > 0 and all(_is_index_grid(t) for t in x)


def _is_split(x):
    """``split_linop``'s ``(tiles, input_slices, output_slices)``."""
    return (type(x) is tuple and len(x) == 3 and _is_grid(x[0])  # one tile when nothing is split
            and _is_index_grid(x[1]) and _is_index_grid(x[2]))


def _cells(grid, index=()):
    if isinstance(grid, Linop):
        yield index, grid
        return
    for k, t in enumerate(grid):
        yield from _cells(t, index + (k,))


def _at(grid, index):
    for k in index:
        grid = grid[k]
    return grid


def _grid_shape(grid):
    shape = []
    while type(grid) is tuple:
        shape.append(len(grid))
        grid = grid[0]
    return shape


def _tile_slices(tile, ins, outs):
    """``{dim: slice}`` of a tile from its input and output index tuples."""
    found = {}
    for shape, idx in ((tile.ishape, ins), (tile.oshape, outs)):
        names = named(shape)
        if len(idx) - 1 == len(names):
            for d, s in zip(names, idx[1:]):
                if s != slice(None):
                    found.setdefault(d, s)
    return found


def _tile_where(tile, slices):
    if slices is not None:
        return " ".join(f"{d}[{s.start}:{s.stop}]" for d, s in slices.items())
    dims = dict.fromkeys(named(tile.ishape) + named(tile.oshape))
    return " ".join(f"{d}={tile.size(d)}" for d in dims if tile.size(d) is not None)


def _tile_devices(node):
    devices = dict.fromkeys(str(t.device) for t in _subtree_tensors(node))
    return "@" + (",".join(devices) if devices else "any")


def _tile_rows(x):
    """``(index text, where, tile)`` per tile of a grid or a split."""
    grid, ins, outs = x if _is_split(x) else (x, None, None)
    for index, tile in _cells(grid):
        slices = None if ins is None else _tile_slices(tile, _at(ins, index), _at(outs, index))
        yield "[" + ", ".join(map(str, index)) + "]", _tile_where(tile, slices), tile


def _grid_title(x):
    grid = x[0] if _is_split(x) else x
    shape = _grid_shape(grid)
    count = f"{' × '.join(map(str, shape))} tiles" if shape else "1 tile"
    return count + (" (split_linop)" if _is_split(x) else "")


def tiles_text(x, style):
    rows = list(_tile_rows(x))
    out = [_grid_title(x)]
    for index, where, tile in rows[: style.max_items]:
        node = _summarize(tile)
        where = f" {where} " if where else ""
        out.append(f"  {index}{where} {_line(node, style)}  {_tile_devices(node)}")
    if len(rows) > style.max_items:
        out.append(f"  … {len(rows) - style.max_items} more tiles")
    return "\n".join(out)


def tiles_html(x, style):
    rows = list(_tile_rows(x))
    items = []
    for index, where, tile in rows[: style.max_items]:
        node = _summarize(tile)
        prefix = f"{index} {where} "
        body = _node_html(node, style, 0, prefix, opened=False)
        items.append(f"<li>{body} <span style='{_DIM}'>{_e(_tile_devices(node))}</span></li>")
    if len(rows) > style.max_items:
        items.append(f"<li>… {len(rows) - style.max_items} more tiles</li>")
    return (f"<div class='funclinop' style='{_STYLE}'><details open><summary><b>{_e(_grid_title(x))}</b>"
            f"</summary><ul style='{_LIST}'>{''.join(items)}</ul></details></div>")


# ---- the public entry point ------------------------------------------------------------------
class Display:
    """What :func:`show` returns: prints as text, renders as HTML in notebooks."""

    def __init__(self, x, compact, style):
        self._x, self._compact, self._style = x, compact, style

    def __str__(self):
        s, x = self._style, self._x
        if isinstance(x, Linop):
            return text(x, compact=self._compact, split_kinds=s.split_kinds,
                        max_depth=s.max_depth, max_items=s.max_items)
        return tiles_text(x, s)

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))

    def _repr_html_(self):
        s, x = self._style, self._x
        if self._compact:
            return f"<code>{_e(str(self))}</code>"
        if isinstance(x, Linop):
            return html_tree(x, split_kinds=s.split_kinds, max_depth=s.max_depth, max_items=s.max_items)
        return tiles_html(x, s)


def show(x, *, compact=False, split_kinds=False, max_depth=MAX_DEPTH, max_items=MAX_ITEMS):
    """A display of an operator or of tiles: text when printed, HTML in a notebook.

    ``x`` is an operator, a grid of tiles (the nested tuples ``split_linop``
    returns) or the whole ``(tiles, input_slices, output_slices)`` of
    ``split_linop``. Tiles alone do not record where they came from, so a
    grid shows each tile's dim sizes; the whole triple shows each tile's
    slices. ``compact=True`` gives one line; ``split_kinds=True`` adds how
    every dim splits (:meth:`Linop.split_kind`: diag, in, out, sum, absent,
    none). ``max_depth`` operator levels and ``max_items`` lines per node
    are shown, the rest is counted.

    >>> import torch, funclinop as fl
    >>> A = fl.Dense(torch.zeros(4, 3), ("C", "N"), ("N",), ("C",))
    >>> print(fl.show(A, split_kinds=True))
    Dense((N) -> (C), weight=float32[4, 3] @cpu)  split N=in C=out
    >>> print(fl.show(fl.split_linop(A, {"C": 3})))
    2 tiles (split_linop)
      [0] C[0:3]  Dense((N) -> (C), weight=float32[3, 3] @cpu)  @cpu
      [1] C[3:4]  Dense((N) -> (C), weight=float32[1, 3] @cpu)  @cpu
    """
    if not (isinstance(x, Linop) or _is_grid(x) or _is_split(x)):
        raise TypeError(f"show: expected a Linop, a grid of tiles or split_linop's output, got {type(x).__name__}")
    for name, v in (("max_depth", max_depth), ("max_items", max_items)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"show: {name} must be a positive int, got {v!r}")
    if compact and not isinstance(x, Linop):
        raise ValueError("show: compact=True is for an operator, not a grid of tiles")
    return Display(x, compact, _Style(split_kinds, max_depth, max_items))


_register_builtin()
