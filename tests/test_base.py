"""The operator base: one construction path (fields, converters, hooks, copies)."""

import dataclasses
import pathlib
import re

import pytest
import torch

import funclinop as fl
from funclinop.dims import as_shape
from funclinop.linop import Linop, SameShape, derived, static
from funclinop.testing import FACTORIES, NotApplicable


def example(name):
    """One operator from factory ``name`` (the first dims it accepts)."""
    f = FACTORIES[name]
    for dims in ({"A": 4, "B": 4}, {"A": 4}, {"A": 4, "B": 4, "C": 4}, {"A": 2, "B": 3}):
        try:
            return f.make(torch.Generator().manual_seed(0), f.dtypes[0], dims, set(dims))
        except NotApplicable:
            continue
    raise AssertionError(f"factory {name} builds no example")


def nodes(op):
    """``op`` and the operators it holds (not inside stacked tiles)."""
    out = [op]
    if isinstance(op, fl.VmapTiles):
        return out
    for name in op._children:
        value = getattr(op, name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, Linop):
                out += nodes(v)
    return out


# ---- abstract methods ------------------------------------------------------------------


def test_missing_apply_is_refused_naming_class_and_method():
    class NoApply(SameShape, Linop):
        ioshape: tuple = static(default=("N",))

    with pytest.raises(TypeError, match=r"NoApply.*apply"):
        NoApply()


@pytest.mark.parametrize("missing", ["ishape", "oshape"])
def test_missing_shape_is_refused_naming_class_and_method(missing):
    body = {"apply": lambda self, x: x, "__annotations__": {}}
    other = "oshape" if missing == "ishape" else "ishape"
    body[other] = property(lambda self: ("N",))
    cls = type(f"No{missing.capitalize()}", (Linop,), body)
    with pytest.raises(TypeError, match=rf"{cls.__name__}.*{missing}"):
        cls()


def test_shapes_may_be_fields_derived_fields_or_properties():
    class Fields(Linop):
        ishape: tuple = static(converter=as_shape)
        oshape: tuple = derived()

        def _precompute(self):
            return {"oshape": self.ishape}

        def apply(self, x):
            return x

    A = Fields(["N"])
    assert A.ishape == A.oshape == ("N",)
    assert torch.equal(A(torch.ones(2)), torch.ones(2))


# ---- static fields ---------------------------------------------------------------------


class _Tagged(SameShape, Linop):
    weight: torch.Tensor
    ioshape: tuple = static(default=None, converter=as_shape)
    tag: object = static(default=None)

    def apply(self, x):
        return x * self.weight


@pytest.mark.parametrize("tag", [torch.ones(1), (1, torch.ones(1)), {"k": torch.ones(1)}, ((torch.ones(1),),)])
def test_a_tensor_in_a_static_field_is_refused(tag):
    with pytest.raises(TypeError, match=r"_Tagged.*'tag'"):
        _Tagged(torch.ones(2), ("N",), tag)


def test_static_tensor_refused_on_every_registry_operator():
    """Every static argument of every registered operator refuses a tensor."""
    for name in sorted(FACTORIES):
        for op in nodes(example(name)):
            for f in dataclasses.fields(op):
                if f.init and f.name in op._statics:
                    with pytest.raises(TypeError, match=rf"{type(op).__name__}.*{f.name!r}"):
                        dataclasses.replace(op, **{f.name: torch.zeros(2)})


# ---- converters ------------------------------------------------------------------------


def test_converters_normalise_before_storing():
    D = fl.Diagonal(torch.ones(2), ["N"])
    assert D.ioshape == ("N",)
    assert fl.Diagonal(torch.ones(2, 3), fl.Dim("NxNy")).ioshape == ("Nx", "Ny")
    assert fl.Diagonal(torch.ones(2, 3), "NxNy").ioshape == ("Nx", "Ny")
    assert fl.Identity(["A", "B"]).ishape == ("A", "B")
    T = fl.ToDevice("cpu", "meta")
    assert T.idevice == torch.device("cpu") and isinstance(T.odevice, torch.device)
    assert fl.Pad([5], [3]).pad_im_size == (5,)
    assert fl.SumReduce(["C", "N"], ["N"], sizes={"C": 3}).sizes == (("C", 3),)
    assert fl.Scalar(2).weight.dtype == torch.float64  # a Python number becomes a 0-dim leaf
    with pytest.raises(TypeError, match="Diagonal ioshape"):
        fl.Diagonal(torch.ones(2), (1,))


def test_replace_runs_converters():
    D = fl.Diagonal(torch.ones(2), ("N",))
    assert dataclasses.replace(D, ioshape=["M"]).ioshape == ("M",)


# ---- immutability ----------------------------------------------------------------------


def test_fields_are_immutable_and_there_is_no_setter():
    A = fl.Dense(torch.ones(2, 3), ("M", "N"), ("N",), ("M",))
    assert not hasattr(A, "_set")
    for name in ("weight", "ishape", "_plan", "anything"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(A, name, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        del A.weight


def test_precompute_must_return_every_derived_field():
    class Forgetful(SameShape, Linop):
        ioshape: tuple = static(default=("N",))
        _plan: tuple = derived()

        def apply(self, x):
            return x

    with pytest.raises(TypeError, match=r"Forgetful._precompute.*_plan"):
        Forgetful()


def test_defaults_fill_only_what_was_left_none():
    I = fl.Identity(("A",))
    assert I.oshape == ("A",)
    assert fl.Identity(("A",), ("B",)).oshape == ("B",)


def test_an_optional_tensor_is_none_for_both_pytree_registries():
    A = fl.ArrayToBlocks((5,), (3,), (2,))
    assert A.mask is None
    import optree
    import torch.utils._pytree as torch_pytree

    assert torch_pytree.tree_leaves(A) == optree.tree_leaves(A) == []
    assert torch_pytree.tree_unflatten([], torch_pytree.tree_structure(A)) == A


# ---- replace re-validates ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_replace_rebuilds_and_revalidates_every_registry_operator(name):
    A = example(name)
    for op in nodes(A) + nodes(A.H):
        assert dataclasses.replace(op) == op
        for f in dataclasses.fields(op):
            if f.init and f.name in op._children and not isinstance(op, fl.FunctionLinop):
                with pytest.raises((TypeError, ValueError)):
                    dataclasses.replace(op, **{f.name: "not an operand"})


def test_replace_with_a_bad_value_raises():
    D = fl.Dense(torch.ones(2, 3), ("M", "N"), ("N",), ("M",))
    with pytest.raises(fl.ShapeError, match="Dense"):
        dataclasses.replace(D, weight=torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="broadcast dim"):
        dataclasses.replace(D, broadcast_dims=("Q",))
    with pytest.raises(ValueError, match="at least one"):
        dataclasses.replace(fl.Chain(D), linops=())


def test_replace_resolves_defaults_that_were_stored_as_given():
    A = fl.ArrayToBlocks((5,), (3,), (2,))
    assert A.array_shape is None and A.blocks_shape is None
    B = dataclasses.replace(A, mask=torch.tensor([True, False, True]))
    assert B.oshape == ("...", "Bx", "K")  # the default names follow the new mask
    F = fl.FFT(1)
    assert F.grid_shapes is None and dataclasses.replace(F, inverse=True).ishape == ("...", "Kx")


# ---- one copy path ---------------------------------------------------------------------


def test_operators_are_copied_in_one_place():
    """``object.__new__`` (a copy that skips the constructor) only in linop.py's ``_assemble``."""
    root = pathlib.Path(fl.__file__).parent
    hits = [str(p.relative_to(root)) for p in root.rglob("*.py") if "object.__new__" in p.read_text()]
    assert hits == ["linop.py"]
    assert len(re.findall(r"object\.__new__", (root / "linop.py").read_text())) == 1


def test_derived_copies_share_leaves_and_skip_validation():
    W = torch.randn(2, 3, dtype=torch.complex64)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    AH = A.H
    assert AH.ishape == ("M",) and AH.oshape == ("N",)
    assert AH.H == A
    leaves = fl.tiles.flatten_linop(fl.Chain(A, AH))
    assert fl.tiles.unflatten_linop(leaves[1], leaves[0]) == fl.Chain(A, AH)


def test_the_example_in_docs_operators_runs():
    docs = pathlib.Path(__file__).resolve().parents[1] / "docs" / "operators.md"
    text = docs.read_text()
    block = re.search(r"## Writing an operator.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "operators.md", "exec"), {})


def test_an_operator_written_with_the_former_hook_is_refused():
    with pytest.raises(TypeError, match="_setup is gone"):
        class Old(SameShape, Linop):
            ioshape: tuple = static(default=("N",))

            def _setup(self):
                pass

            def apply(self, x):
                return x
