"""Robustness over the whole catalogue: devices, empty batches, leaves edited in
place, saving and loading, adjoints that need a size."""

import io

import numpy as np
import optree
import pytest
import torch

import funclinop as fl
from funclinop.testing import FACTORIES, NotApplicable, check_adjoint, check_normal, input_for, random_tree

TYPES = sorted(FACTORIES)


def cases(name, n=3):
    """A few operators of the registered type ``name``, with their input dims and dtype."""
    f = FACTORIES[name]
    out = []
    for seed in range(40):
        ndim = 1 + seed % min(3, f.max_dims)
        sizes = [max(f.min_size, 1 + (5 * seed + 3 * i) % 5) for i in range(ndim)]
        if seed % 4 == 3:
            sizes[0] = 2  # some factories need a leading dim of size 2
        dims, dtype = dict(zip("XYZ", sizes)), f.dtypes[seed % len(f.dtypes)]
        try:
            out.append((random_tree(seed, dtype, dims, 0, [name]), dims, dtype))
        except NotApplicable:
            continue
        if len(out) == n:
            break
    assert out, f"no operator of type {name} could be built"
    return out


def trees(n=6):
    out = []
    for seed in range(n):
        dims, dtype = {"X": 3, "Y": 2 + seed % 3}, (torch.float64, torch.complex128)[seed % 2]
        try:
            out.append((random_tree(seed, dtype, dims, 1 + seed % 2), dims, dtype))
        except NotApplicable:
            continue
    return out


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def forms(A, dims, dtype):
    """(name, operator, an input for it): the operator, its adjoint and its normal."""
    x = input_for(gen(1), dims, dtype)
    return (("apply", A, x), ("adjoint", A.H, torch.randn_like(A(x))), ("normal", A.N, x))


def round_trip(obj, **kwargs):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, **kwargs)  # weights_only=True: torch's default


def sense(C=4, N=6, dtype=torch.complex64):
    maps = torch.randn(C, N, N, dtype=dtype, generator=gen())
    A = fl.Chain(fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy")), fl.FFT(2, ("C",)))
    return A, torch.randn(N, N, dtype=dtype, generator=gen(1))


# ---- devices ----------------------------------------------------------------------
@pytest.mark.parametrize("name", TYPES)
def test_adjoint_and_normal_live_where_the_operator_lives(name):
    """A.H and A.N hold no tensor on a device A's leaves are not on: moved to
    another device (meta stands in for a GPU), all three take inputs there,
    and an operator without leaves has forms without leaves (any device)."""
    for A, dims, dtype in cases(name) + trees(4):
        B = fl.to(A, "meta")
        assert B._idevice in (None, torch.device("meta"))
        for form, op in (("adjoint", B.H), ("normal", B.N)):
            assert op._idevice == B._idevice, f"the {form} of {B._name()} takes its input on {op._idevice}"


@pytest.mark.parametrize("weight", [torch.randn(2, 3, 4), torch.randn(3, 4)], ids=["einsum", "linear"])
def test_meta_input_to_cpu_operator_is_a_device_error(weight):
    A = fl.Dense(weight)
    x = torch.randn(2, 4, device="meta")
    with pytest.raises(fl.DeviceError, match=r"Dense\(.*input is on meta.*leaves are on cpu \(e\.g\. weight\)"):
        A(x)
    with pytest.raises(fl.DeviceError):
        A.H(torch.randn(2, 3, device="meta"))


@pytest.mark.parametrize("name", TYPES)
def test_every_operator_checks_the_input_device(name):
    """Leaves on cpu: a meta input is refused before any work; no leaf: any device goes."""
    for A, dims, dtype in cases(name):
        for form, op, x in forms(A, dims, dtype):
            pinned = any(t.ndim > 0 for t in optree.tree_leaves(op) if isinstance(t, torch.Tensor))
            if pinned:
                with pytest.raises(fl.DeviceError, match="input is on meta"):
                    op(x.to("meta"))
                moved = fl.to(op, "meta")  # the check follows the leaves
                with pytest.raises(fl.DeviceError, match="input is on cpu"):
                    moved(x)
                assert moved(x.to("meta")).shape == op(x).shape
            else:
                y = op(x.to("meta"))
                assert y.device.type == "meta" and y.shape == op(x).shape, form


def test_device_check_does_not_catch_runtime_errors():
    """A RuntimeError from inside apply propagates unchanged, whatever its text."""
    error = RuntimeError("CUDA error: device-side assert triggered")

    def fails(w, x):
        raise error

    A = fl.FunctionLinop(fails, torch.ones(3), ishape=("N",), oshape=("N",))
    with pytest.raises(RuntimeError) as info:
        A(torch.ones(3))
    assert info.value is error and not isinstance(info.value, fl.DeviceError)


def test_leaves_on_two_devices_without_a_move_fit_no_input():
    A = fl.Dense(torch.randn(3, 4), ("M", "N"), ("N",), ("M",))
    B = fl.to(fl.Dense(torch.randn(2, 3), ("K", "M"), ("M",), ("K",)), "meta")
    C = fl.Chain(A, B)
    for device in ("cpu", "meta"):
        with pytest.raises(fl.DeviceError, match=r"cpu \(e\.g\. linops\.0\.weight\), meta \(e\.g\. linops\.1\.weight\)"):
            C(torch.randn(4, device=device))


def test_to_device_in_a_chain_moves_the_data():
    A = fl.Dense(torch.randn(3, 4), ("M", "N"), ("N",), ("M",))
    B = fl.to(fl.Dense(torch.randn(2, 3), ("K", "M"), ("M",), ("K",)), "meta")
    C = fl.Chain(A, fl.ToDevice("cpu", "meta", ("M",)), B)
    y = C(torch.randn(4))
    assert y.device.type == "meta" and y.shape == (2,)
    with pytest.raises(fl.DeviceError, match="takes its input on cpu"):
        C(torch.randn(4, device="meta"))
    with pytest.raises(fl.DeviceError, match="takes its input on meta"):
        C.H(torch.randn(2))  # the adjoint starts on meta and moves back to cpu
    with pytest.raises(fl.DeviceError, match="takes its input on cpu"):
        fl.ToDevice("cpu", "meta")(torch.ones(2, device="meta"))


@pytest.mark.parametrize("stack", [True, False])
def test_batched_operators_take_input_on_the_base_device(stack):
    A, x = sense()
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}, device_matrix=["meta"], base_device="cpu", stack=stack))
    assert all(t.device.type == "meta" for t in optree.tree_leaves(B) if isinstance(t, torch.Tensor))
    for op, z in ((B, x), (B.H, A(x)), (B.N, x)):
        with pytest.raises(fl.DeviceError, match="takes its input on cpu"):
            op(z.to("meta"))
    if stack:  # into the tiles' device and through them: the data is on meta
        into_tiles = fl.Chain(*B.linops[:2])
        y = into_tiles(x)
        assert y.device.type == "meta" and y.shape == A(x).shape


def test_cpu_scalars_work_with_inputs_on_any_device():
    """A 0-dim cpu leaf is a number to torch: it does not pin the operator to cpu."""
    A = fl.to(fl.Dense(torch.randn(3, 4), ("M", "N"), ("N",), ("M",)), "meta")
    for op in (2.0 * A, fl.Scalar(3.0, ("N",)), fl.Chain(fl.Scalar(3.0, ("N",)), A)):
        assert op(torch.randn(4, device="meta")).device.type == "meta"
    with pytest.raises(fl.DeviceError):
        (2.0 * A)(torch.randn(4))


# ---- empty batches ------------------------------------------------------------------
def check_empty_batch(op, x):
    """``op`` maps a leading batch of 0 to an empty output shaped like a batch of 1's."""
    one, none = op.apply(x[None]), op.apply(x[None][:0])
    assert none.shape == (0,) + one.shape[1:] and none.numel() == 0
    assert none.dtype == one.dtype


@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("form", ["apply", "adjoint", "normal"])
def test_every_operator_maps_an_empty_batch_to_an_empty_batch(name, form):
    # apply takes extra leading dims: what __call__ passes through a leading '...'
    for A, dims, dtype in cases(name):
        _, op, x = dict((f[0], f) for f in forms(A, dims, dtype))[form]
        check_empty_batch(op, x)


def test_trees_and_batched_operators_map_an_empty_batch_to_an_empty_batch():
    for A, dims, dtype in trees():
        for _, op, x in forms(A, dims, dtype):
            check_empty_batch(op, x)
    A, x = sense()
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": 2}))
    for op, z in ((B, x), (B.H, A(x)), (B.N, x)):
        check_empty_batch(op, z)


def test_empty_leading_batch_through_call():
    S = fl.Sampling((torch.tensor([0, 2]),), (3,))
    assert S.H(torch.randn(0, 2)).shape == (0, 3)
    assert S(torch.randn(0, 3)).shape == (0, 2)
    F = fl.FFT(1)
    assert F(torch.randn(0, 5, dtype=torch.complex64)).shape == (0, 5)
    assert F.H(torch.randn(0, 5)).dtype == torch.complex64  # what fft gives a real input
    M = fl.Sampling((torch.tensor([[0, 1]]), torch.tensor([[2, 0]])), (2, 3))
    assert M.H(torch.randn(4, 0, 1, 2)).shape == (4, 0, 2, 3)


# ---- leaves edited in place ----------------------------------------------------------
INTERPOLATE_STENCIL = ("_rows", "_src", "_order", "_offsets")


def edit_leaves(A):
    """Change every tensor leaf of A in place (indices stay valid: they are permuted).

    Except the stencil an Interpolate sorts by grid point for its adjoint
    (row offsets and the sort order: no permutation of them is valid) and the
    flat stencil it is sorted from (the two would no longer match): private
    derived leaves, not the user's data.
    """
    paths, leaves, _ = optree.tree_flatten_with_path(A)
    for path, t in zip(paths, leaves):
        if not isinstance(t, torch.Tensor) or t.numel() == 0:
            continue
        if path and path[-1] in INTERPOLATE_STENCIL:
            continue
        if t.is_floating_point() or t.is_complex():
            # not one affine map for all: on a partition-of-unity kernel
            # (weights summing to 1 in pairs) that can cancel to an exactly
            # zero operator, whose dot test measures only round-off
            ramp = torch.linspace(0.2, 0.3, t.numel(), dtype=torch.float64).view(t.shape)
            t.mul_(-0.5).add_(ramp.to(t.dtype))
        elif t.dtype == torch.bool:
            t.logical_not_()
        else:
            t.copy_(t.flatten().roll(1).view(t.shape))


@pytest.mark.parametrize("name", TYPES)
def test_every_operator_stays_consistent_after_its_leaves_are_edited(name):
    """A, A.H and A.N compute from the same (derived) leaves, whatever was edited."""
    for A, dims, dtype in cases(name, 8):
        edit_leaves(A)
        x = input_for(gen(2), dims, dtype)
        check_adjoint(A, x)
        check_normal(A, x)


def test_blocks_mask_edited_in_place():
    mask = torch.tensor([[True, False], [False, True]])
    A = fl.ArrayToBlocks((4, 4), (2, 2), (1, 1), mask)
    x = torch.randn(4, 4, dtype=torch.float64)
    mask[0, 1] = True  # A.N read the new mask; A and A.H the selection made at construction
    torch.testing.assert_close(A.N(x), A.H(A(x)))
    check_adjoint(A, x)
    B = A.H
    torch.testing.assert_close(B.N(A(x)), B.H(B(A(x))))


def test_sampling_index_edited_in_place():
    ix, iy = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 2, 1])
    S = fl.Sampling((ix, iy), (4, 3))
    x = torch.randn(4, 3, dtype=torch.float64)
    y = S(x)
    ix.copy_(torch.tensor([3, 3, 0, 1]))
    torch.testing.assert_close(S(x), y)  # computed from flat_idx, made at construction
    torch.testing.assert_close(S.N(x), S.H(S(x)))
    tiles, _, outs = fl.split_linop(S, {"M": 3})  # tiles slice what S uses
    torch.testing.assert_close(torch.cat([t(x) for t in tiles]), S(x))
    B = fl.create_batched_linop(S, fl.BatchSpec({"M": 2}))
    torch.testing.assert_close(B(x), S(x))
    torch.testing.assert_close(B.H(y), S.H(y))


# ---- saving and loading -------------------------------------------------------------
def assert_same(B, A, x):
    assert type(B) is type(A) and B == A
    torch.testing.assert_close(B(x), A(x))


@pytest.mark.parametrize("name", TYPES)
def test_every_operator_saves_and_loads_with_the_default_loader(name):
    for A, dims, dtype in cases(name):
        for _, op, x in forms(A, dims, dtype):
            assert_same(round_trip(op, weights_only=True), op, x)


def test_trees_tiles_batched_operators_and_specs_save_and_load():
    for A, dims, dtype in trees():
        for _, op, x in forms(A, dims, dtype):
            assert_same(round_trip(op), op, x)
    A, x = sense()
    tiles, ins, outs = fl.split_linop(A.linops[0], {"C": 3, "Nx": 4})
    loaded = round_trip((tiles, ins, outs))
    assert loaded[1:] == (ins, outs)
    for t, u in zip(optree.tree_leaves(tiles, is_leaf=lambda v: isinstance(v, fl.Linop)),
                    optree.tree_leaves(loaded[0], is_leaf=lambda v: isinstance(v, fl.Linop))):
        assert u == t
    for spec in (fl.BatchSpec({"C": np.int64(2)}, device_matrix=["cpu"], base_device="cpu"),
                 fl.BatchSpec({"C": 1}, stack=False)):
        loaded = round_trip(spec)
        assert loaded == spec and hash(loaded) == hash(spec)
        B = fl.create_batched_linop(A, spec)
        C = round_trip(B)
        assert C == B and any(isinstance(op, fl.VmapTiles) for op in optree.tree_leaves(
            C, is_leaf=lambda v: isinstance(v, fl.VmapTiles))) == spec.stack
        torch.testing.assert_close(C(x), A(x))
        torch.testing.assert_close(C.H(A(x)), A.H(A(x)))
    with pytest.raises(TypeError, match="read-only"):
        loaded.batch_sizes["C"] = 3


def test_loading_onto_another_device_moves_the_device_check():
    A = fl.Dense(torch.randn(3, 4), ("M", "N"), ("N",), ("M",))
    B = round_trip(A.N, map_location="meta")
    assert B(torch.randn(4, device="meta")).device.type == "meta"
    with pytest.raises(fl.DeviceError, match="input is on cpu"):
        B(torch.randn(4))


# ---- adjoints that need a size --------------------------------------------------------
def test_sum_reduce_without_size_has_no_adjoint():
    S = fl.SumReduce(("C", "N"), ("N",))
    torch.testing.assert_close(S(torch.ones(3, 2)), torch.full((2,), 3.0))  # the forward needs no size
    for make in (lambda: S.H, lambda: S.N, lambda: S.apply_adjoint(torch.ones(2))):
        with pytest.raises(fl.ShapeError, match=r"SumReduce\(\(C, N\) -> \(N\)\).*summed dim 'C'.*sizes="):
            make()
    sized = fl.SumReduce(("C", "N"), ("N",), sizes={"C": 3})
    check_adjoint(sized, torch.randn(3, 2, dtype=torch.float64))
    assert sized.H(torch.ones(2)).shape == (3, 2)


def test_sum_reduce_broadcast_dims_are_explicit():
    """A size-1 broadcast adjoint (torchlinops' convention) is asked for by name."""
    S = fl.SumReduce(("C", "N"), ("N",), broadcast_dims=("C",))
    assert S.H(torch.ones(2)).shape == (1, 2)
    assert S.H == fl.Repeat({}, ("N",), ("C", "N"), broadcast_dims=("C",)) and S.H.H == S
    # after a broadcast, the sum is the adjoint of the broadcast product
    w = torch.randn(3, 2, dtype=torch.float64)
    A = fl.Chain(S.H, fl.Diagonal(w, ("C", "N")))
    x = torch.randn(2, dtype=torch.float64)
    check_adjoint(A, x, torch.randn(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="broadcast dim 'N'"):
        fl.SumReduce(("C", "N"), ("C",), broadcast_dims=("N",), sizes={"N": 2})
    with pytest.raises(ValueError, match="broadcast dim 'Q'"):
        fl.SumReduce(("C", "N"), ("N",), broadcast_dims=("Q",))
    assert S.tile({"N": slice(0, 1)}).broadcast_dims == ("C",)


def test_other_einops_operators_refuse_an_adjoint_they_cannot_size():
    R = fl.Rearrange("a b", "(a b)", ("A", "B"), ("AB",))
    assert R(torch.ones(2, 3)).shape == (6,)
    with pytest.raises(ValueError, match="all but one"):
        R.H
    with pytest.raises(ValueError, match="no repeat count"):
        fl.Repeat({}, ("N",), ("C", "N"))
    P = fl.Repeat({"C": 3}, ("N",), ("C", "N"))
    check_adjoint(P, torch.randn(2, dtype=torch.float64))
