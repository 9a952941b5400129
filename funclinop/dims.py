"""Named dimensions.

Dims are plain strings. A shape is a tuple of dims; ``"..."`` may lead a
shape and stands for any number of batch dims, carried through unchanged.
"""

import re
from typing import Sequence, Union

__all__ = ["Dim", "DimLike", "Shape", "ELLIPSIS", "dim_name", "fresh", "fresh_names", "as_shape", "unify", "named", "axis_of", "sorted_sizes"]

ELLIPSIS = "..."

DimLike = Union[str, Sequence[str]]
"""A dim name, or a one-name ``Dim`` (``Dim("C") == ("C",)``)."""

Shape = tuple[str, ...]
"""Named dims, possibly led by ``"..."``."""


def Dim(s: str | None = None) -> tuple[str, ...]:
    """Split a compact dim string at capitals: ``Dim("NxNyNz") == ("Nx", "Ny", "Nz")``.

    Digits stay with the name they follow (``Dim("A1B") == ("A1", "B")``) and
    ``"..."`` is a dim of its own (``Dim("...NxNy") == ("...", "Nx", "Ny")``).

    >>> Dim("CNxNy")
    ('C', 'Nx', 'Ny')
    """
    if not s:
        return ()
    if not isinstance(s, str):
        raise TypeError(f"Dim expects a string, got {type(s).__name__}")
    parts = re.findall(r"\.\.\.|[A-Z][^A-Z.]*|[^A-Z.]+", s)
    if "".join(parts) != s or any(p[0].isdigit() for p in parts):
        raise ValueError(f"Dim: cannot parse {s!r} into dim names")
    return tuple(parts)


def dim_name(dim: DimLike, what: str = "dim") -> str:
    """A dim name from a string or a one-name ``Dim`` (``Dim("C") == ("C",)``).

    >>> dim_name(Dim("C")), dim_name("Nx")
    ('C', 'Nx')
    """
    if isinstance(dim, str):
        return dim
    if isinstance(dim, (tuple, list)) and len(dim) == 1 and isinstance(dim[0], str):
        return dim[0]
    raise TypeError(f"{what}: a dim name is a string or a one-name Dim, got {dim!r}")


def fresh(dim: str, avoid) -> str:
    """The next unused name derived from ``dim``: ``N`` -> ``N1`` -> ``N2``.

    >>> fresh("N", ("N", "N1"))
    'N2'
    """
    if dim == ELLIPSIS:
        return dim
    base = dim.rstrip("0123456789") or dim
    k = int(dim[len(base):] or 0)
    name = dim
    while name in avoid:
        k += 1
        name = f"{base}{k}"
    return name


def fresh_names(names, avoid) -> tuple[str, ...]:
    """Fresh names for each of ``names``, distinct from ``avoid`` and from each other.

    >>> fresh_names(("Nx", "Ny"), ("Nx", "Ny"))
    ('Nx1', 'Ny1')
    """
    taken = set(avoid)
    out = []
    for d in names:
        out.append(fresh(d, taken))
        taken.add(out[-1])
    return tuple(out)


def as_shape(shape, what: str = "shape") -> tuple[str, ...]:
    """Normalise a shape argument: a compact string, a sequence of dims, or None."""
    if shape is None:
        return (ELLIPSIS,)
    if isinstance(shape, str):
        shape = Dim(shape)
    shape = tuple(shape)
    for d in shape:
        if not isinstance(d, str):
            raise TypeError(f"{what}: dim names must be strings, got {d!r} in {shape}")
    if ELLIPSIS in shape[1:]:
        raise ValueError(f"{what}: '...' may only lead a shape, got {shape}")
    named_dims = named(shape)
    if len(set(named_dims)) != len(named_dims):
        raise ValueError(f"{what}: repeated dim name in {shape}")
    return shape


def as_optional_shape(shape, what: str = "shape"):
    """:func:`as_shape`, keeping None (a default resolved later)."""
    return None if shape is None else as_shape(shape, what)


def named(shape) -> tuple[str, ...]:
    """The named dims of a shape (without the leading ``"..."``)."""
    return shape[1:] if shape and shape[0] == ELLIPSIS else tuple(shape)


def axis_of(shape, dim: str) -> int:
    """The axis of ``dim``, counted from the end, in a tensor whose trailing
    dims are the named dims of ``shape`` (leading ``"..."`` dims ride in front)."""
    names = named(shape)
    return names.index(dim) - len(names)


def unify(a, b):
    """The most specific shape compatible with both ``a`` and ``b``, or None.

    Named dims align from the right; a leading ``"..."`` absorbs the extra
    leading dims of the other shape.
    """
    na, nb = named(a), named(b)
    k = min(len(na), len(nb))
    if na[len(na) - k:] != nb[len(nb) - k:]:
        return None
    ea, eb = len(na) < len(a), len(nb) < len(b)
    if len(na) > len(nb):
        return a if eb else None
    if len(nb) > len(na):
        return b if ea else None
    return a if not ea else b


def sorted_sizes(sizes) -> tuple:
    """The ``(dim, size)`` pairs of a ``{dim: size}`` mapping, in dim order.

    Only the names are compared: under ``torch.compile(dynamic=True)`` the
    sizes may be symbolic, and dynamo cannot sort tuples that hold them.

    >>> sorted_sizes({"Y": 2, "X": 3})
    (('X', 3), ('Y', 2))
    """
    return tuple((d, sizes[d]) for d in sorted(sizes))
