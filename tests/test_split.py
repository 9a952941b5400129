"""Example-based tests of tiling, split_linop, create_batched_linop, ToDevice and to()."""

import optree
import pytest
import torch

import funclinop as fl

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def sense(C=4, N=8, dtype=torch.complex128, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(C, N, N, dtype=dtype, generator=g)
    mask = (torch.rand(N, N, generator=g) > 0.5).to(dtype)
    S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
    return fl.Chain(S, fl.Diagonal(mask, ("...", "Nx", "Ny"))), torch.randn(N, N, dtype=dtype, generator=g)


def assert_same_operator(B, A, x):
    y = A(x)
    torch.testing.assert_close(B(x), y)
    torch.testing.assert_close(B.H(y), A.H(y))
    torch.testing.assert_close(B.N(x), A.N(x))


@pytest.mark.parametrize("stack", [True, False])
@pytest.mark.parametrize("bs", [1, 3, 4])
def test_batched_sense_over_coils(stack, bs):
    A, x = sense()
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": bs}, stack=stack))
    assert_same_operator(B, A, x)
    if stack and bs == 1:
        assert isinstance(B, fl.VmapTiles)


def test_nested_specs_and_internal_dim():
    A, x = sense(C=5, N=6)
    B = fl.create_batched_linop(A, [fl.BatchSpec({"C": 2}), fl.BatchSpec({"Nx": 4}, stack=False)])
    assert_same_operator(B, A, x)
    # the normal has C as an internal dim: its tiles add up
    N = A.N
    BN = fl.create_batched_linop(N, fl.BatchSpec({"C": 2}))
    torch.testing.assert_close(BN(x), N(x))


def test_split_linop_nested_tuples_and_slices():
    A, x = sense(C=5, N=6)
    tiles, ins, outs = fl.split_linop(A, {"C": 2, "Nx": 4})
    assert len(tiles) == 3 and len(tiles[0]) == 2
    assert tiles[2][1].size("C") == 1 and tiles[2][1].size("Nx") == 2
    assert outs[2][1] == (Ellipsis, slice(4, 5), slice(4, 6), slice(None))
    assert ins[2][1] == (Ellipsis, slice(4, 6), slice(None))
    y = A(x)
    torch.testing.assert_close(tiles[2][1](x[ins[2][1]]), y[outs[2][1]])
    meta = optree.tree_map(lambda t: t.to("meta"), tiles)
    assert meta[0][0].linops[0].weight.device.type == "meta"


def test_concat_tiles_straddle_children():
    W1, W2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    V = fl.Concat(fl.Dense(W1, ("M", "N"), ("N",), ("M",)), fl.Dense(W2, ("M", "N"), ("N",), ("M",)), odim="M")
    x = torch.randn(4, dtype=torch.float64)
    T = fl.tile(V, {"M": slice(2, 4)})
    torch.testing.assert_close(T(x), torch.cat([W1, W2])[2:4] @ x)
    B = fl.create_batched_linop(V, fl.BatchSpec({"M": 2}))
    assert_same_operator(B, V, x)


def test_stacked_leaves_are_views_not_copies():
    A, x = sense(C=4)
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}))
    w = B.stacked.linops[0].weight
    assert w.untyped_storage().data_ptr() == A.linops[0].weight.untyped_storage().data_ptr()


def test_mixed_dim_refuses_to_split():
    W = torch.randn(3, 4, dtype=torch.float64)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    with pytest.raises(ValueError, match="cannot split dim 'N'"):
        fl.create_batched_linop(A.N, fl.BatchSpec({"N": 2}))


def test_bad_batch_specs():
    A, _ = sense()
    with pytest.raises(ValueError, match="no dim 'Q'"):
        fl.create_batched_linop(A, fl.BatchSpec({"Q": 1}))
    with pytest.raises(ValueError, match="positive"):
        fl.split_linop(A, {"C": 0})
    with pytest.raises(TypeError, match="int"):
        fl.split_linop(A, {"C": 1.5})
    with pytest.raises(TypeError):
        fl.BatchSpec(["C"])
    free = fl.Chain(fl.Identity(("X",)), fl.Scalar(2.0, ("X",)))
    with pytest.raises(ValueError, match="fixes the size of dim 'X'"):
        fl.split_linop(free, {"X": 1})
    with pytest.raises(ValueError, match="device_matrix"):
        fl.create_batched_linop(A, fl.BatchSpec({"C": 2}, device_matrix=["cpu", "cpu", "cpu"]))
    with pytest.raises(ValueError, match="device_matrix"):
        fl.create_batched_linop(A, fl.BatchSpec({"C": 2}, device_matrix=[["cpu"], ["cpu"]]))
    with pytest.raises(ValueError, match="contiguous"):
        fl.tile(A, {"C": slice(0, 4, 2)})


def test_batch_spec_is_frozen_and_hashable():
    s = fl.BatchSpec({"C": 2}, device_matrix=["cpu"])
    assert hash(s) == hash(fl.BatchSpec({"C": 2}, device_matrix=["cpu"]))
    with pytest.raises(TypeError):
        s.batch_sizes["C"] = 3
    assert s.device_matrix == (torch.device("cpu"),)


def test_device_names_are_normalised():
    from funclinop.device import as_device

    assert as_device("cuda") == as_device("cuda:0") or torch.cuda.device_count() > 1
    T = fl.ToDevice("cuda", "cpu")
    assert T.idevice.index is not None


def test_to_device_moves_and_adjoint_moves_back():
    T = fl.ToDevice("cpu", "meta", ("X",))
    y = T(torch.ones(3))
    assert y.device.type == "meta"
    assert (T.H.idevice.type, T.H.odevice.type) == ("meta", "cpu")
    with pytest.raises(fl.DeviceError, match="takes its input on meta"):
        T.H(torch.ones(3))  # the adjoint moves from meta back to cpu
    assert T.H.H == T
    assert isinstance(T.N, fl.Identity)


def test_to_keeps_sharing_and_copies_tiles_only():
    W = torch.randn(3, 7, dtype=torch.complex64)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    C = fl.Chain(A, A.H)  # A's weight and its conjugate view share storage
    moved = fl.to(C, dtype=torch.complex128)
    w0, w1 = moved.linops[0].weight, moved.linops[1].weight
    assert w0.untyped_storage().data_ptr() == w1.untyped_storage().data_ptr()
    assert w1.is_conj()
    torch.testing.assert_close(w1.resolve_conj(), W.conj().to(torch.complex128))
    tiles, _, _ = fl.split_linop(A, {"M": 1})
    t = fl.to(tiles[1], dtype=torch.complex128)
    assert t.weight.untyped_storage().nbytes() == 7 * 16  # one row, not the whole weight
    torch.testing.assert_close(t.weight, W[1:2].to(torch.complex128))


def test_to_copy_gives_a_tile_its_own_storage_and_keeps_sharing():
    W = torch.randn(3, 7, dtype=torch.complex64)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    t = fl.tile(fl.Chain(A, A.H), {"M": slice(1, 2)})  # a row of W, and its conjugate view
    assert t.linops[0].weight.untyped_storage().nbytes() == W.nbytes  # a view of the whole weight
    assert fl.to(t).linops[0].weight.untyped_storage().data_ptr() == W.untyped_storage().data_ptr()
    own = fl.to(t, copy=True)
    w0, w1 = own.linops[0].weight, own.linops[1].weight
    assert w0.untyped_storage().nbytes() == 7 * 8  # its row only
    assert w0.untyped_storage().data_ptr() == w1.untyped_storage().data_ptr() != W.untyped_storage().data_ptr()
    torch.testing.assert_close(w0, W[1:2])
    torch.testing.assert_close(w1.resolve_conj(), W[1:2].conj())


def test_differential_batching_against_torchlinops():
    tl = pytest.importorskip("torchlinops")
    A, x = sense(C=4, N=8, dtype=torch.complex64)
    maps, mask = A.linops[0].weight, A.linops[1].weight
    ref = tl.Chain(tl.Dense(maps, tl.Dim("CNxNy"), tl.Dim("NxNy"), tl.Dim("CNxNy")),
                   tl.Diagonal(mask, ("C", "Nx", "Ny"), broadcast_dims=["C"]))
    Bref = tl.create_batched_linop(ref, tl.BatchSpec({"C": 1}))
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}))
    torch.testing.assert_close(B(x), Bref(x))
    torch.testing.assert_close(B.H(A(x)), Bref.H(A(x)))


@cuda
def test_cuda_tiles_with_cpu_data():
    A, x = sense(C=4, N=16, dtype=torch.complex64)
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": 2}, device_matrix=["cuda"], base_device="cpu"))
    y = B(x)
    assert y.device.type == "cpu"
    torch.testing.assert_close(y, A(x))
    torch.testing.assert_close(B.H(y), A.H(y))


@cuda
def test_to_cuda_keeps_sharing():
    A, _ = sense(C=2, N=8, dtype=torch.complex64)
    N = fl.to(A.N, "cuda")
    ptrs = {op.weight.untyped_storage().data_ptr() for op in N.linops if isinstance(op, fl.Dense)}
    assert len(ptrs) == 1


def test_tiles_on_one_other_device_stack_there_and_move_data_once():
    A, _ = sense(C=4, N=8)
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}, device_matrix=["meta"], base_device="cpu"))
    assert isinstance(B, fl.Chain) and len(B.linops) == 3
    into, tiles, back = B.linops
    assert isinstance(into, fl.ToDevice) and (into.idevice.type, into.odevice.type) == ("cpu", "meta")
    assert isinstance(tiles, fl.VmapTiles)
    assert all(t.device.type == "meta" for t in optree.tree_leaves(tiles) if isinstance(t, torch.Tensor))
    assert (back.idevice.type, back.odevice.type) == ("meta", "cpu")
    # looped tiles move their own part of the data, one tile at a time
    L = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}, device_matrix=["meta"], base_device="cpu", stack=False))
    assert isinstance(L, fl.Concat) and all(isinstance(t, fl.Chain) and isinstance(t.linops[0], fl.ToDevice)
                                            for t in L.linops)


def test_input_on_another_device_is_a_device_error():
    A, x = sense(C=2, N=4)
    B = fl.to(A, "meta")
    with pytest.raises(fl.DeviceError, match=r"input is on cpu.*leaves are on meta.*linops\.0\.weight"):
        B(x)



# ---- the seed API: Dim names, broadcast_device_matrix --------------------------------
def test_one_name_dims_are_accepted_wherever_a_dim_name_is():
    A, x = sense()
    tiles, _, _ = fl.split_linop(A, {fl.Dim("C"): 2})
    assert len(tiles) == 2
    assert fl.BatchSpec({fl.Dim("C"): 2}) == fl.BatchSpec({"C": 2})
    assert_same_operator(fl.create_batched_linop(A, fl.BatchSpec({fl.Dim("C"): 2})), A, x)
    assert fl.size(A, fl.Dim("C")) == 4
    assert fl.tile(A, {fl.Dim("C"): slice(0, 1)}).size("C") == 1
    with pytest.raises(TypeError, match="one-name Dim"):
        fl.split_linop(A, {fl.Dim("CNx"): 2})
    with pytest.raises(ValueError, match="'C' is given twice"):
        fl.BatchSpec({"C": 1, fl.Dim("C"): 2})


def test_broadcast_device_matrix_gives_the_device_of_every_tile():
    A, _ = sense(C=5)
    spec = fl.BatchSpec({"C": 2}, device_matrix=["cpu", "meta"])
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert spec.broadcast_device_matrix(A) == (cpu, meta, cpu)
    assert fl.BatchSpec({"C": 2}).broadcast_device_matrix(A) == (cpu, cpu, cpu)
    grid = fl.BatchSpec({"C": 4, "Nx": 3}, device_matrix=[["meta", "cpu"]]).broadcast_device_matrix(A)
    assert grid == ((meta, cpu, meta), (meta, cpu, meta))
    with pytest.raises(ValueError, match="more devices"):
        fl.BatchSpec({"C": 5}, device_matrix=["cpu", "meta"]).broadcast_device_matrix(A)


def test_batched_normal_and_adjoint_build_inside_torch_func_transforms():
    A, x = sense()
    B = fl.create_batched_linop(A, fl.BatchSpec({"C": 2}))
    grad = lambda op: torch.func.grad(lambda x: op.N(x).abs().square().sum())(x)
    torch.testing.assert_close(grad(B), grad(A))
    gB = fl.grad(lambda B: B.H(B(x)).abs().square().sum())(B)
    assert type(gB) is type(B)
