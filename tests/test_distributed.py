"""fl.distribute over gloo ranks on this machine, against the single-process operator.

Starting ranks costs seconds (importing torch), so one spawn of 4 ranks runs
every check that needs a process group and returns a dict of results per
rank; the tests read it through a module-scoped fixture. Only the test of a
failing rank starts processes of its own (its process group breaks).
"""

import pytest
import torch
import torch.distributed as dist

import funclinop as fl
from funclinop.demo import cartesian_mask, coil_maps, sense_operator
from funclinop.linop import optree

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

P = 4  # ranks
TOL = 1e-10  # float64 / complex128 throughout, except the memory checks (complex64, no arithmetic)


def _ops(n=6, C=7, B=7):
    """(name, operator, split dim, kind): every split kind; 7 tiles of 1 are uneven over 4 ranks."""
    g = torch.Generator().manual_seed(0)
    A = sense_operator(coil_maps(n, C).to(torch.complex128), cartesian_mask(n, 2))
    W = torch.randn(B, 3, 4, dtype=torch.complex128, generator=g)
    Dg = fl.Dense(W, ("B", "M", "N"), ("B", "N"), ("B", "M"))  # B in both shapes
    return [("sense", A, "C", "out"), ("sense.H", A.H, "C", "in"), ("sense.N", A.N, "C", "sum"),
            ("batched", Dg, "B", "diag")]


def frame_sense(n, coils, frames):
    """SENSE with a frame dim: one image and one sampling mask per frame, the
    coil maps shared; (T, Nx, Ny) -> (T, C, Kx, Ky). T is in both shapes (a
    block-diagonal split), C in the output only."""
    maps = coil_maps(n, coils).to(torch.complex128)
    masks = torch.stack([cartesian_mask(n, 3, seed=t) for t in range(frames)]).to(torch.float64)
    S = fl.Dense(maps, ("C", "Nx", "Ny"), ("T", "Nx", "Ny"), ("T", "C", "Nx", "Ny"))
    F = fl.FFT(2, batch_shape=("T", "C"), centered=True)
    M = fl.Diagonal(masks[:, None], ("T", "C", "Kx", "Ky"), broadcast_dims=("C",))
    return M @ F @ S


def _input(op, seed):
    g = torch.Generator().manual_seed(seed)
    shape = [op.size(d) for d in fl.dims.named(op.ishape)]
    return torch.randn(shape, dtype=torch.complex128, generator=g)


def _dense(op, shape):
    """The matrix of ``op`` built column by column."""
    cols = []
    for k in range(int(torch.tensor(shape).prod())):
        e = torch.zeros(shape, dtype=torch.complex128).flatten()
        e[k] = 1
        cols.append(op(e.reshape(shape)).flatten())
    return torch.stack(cols, 1)


def _err(a, b):
    return float((a - b).abs().max()) if a.shape == b.shape else float("inf")


def _block(t, axis, rank, layout):
    return torch.cat([t.narrow(axis, a, b - a) for a, b in layout[rank]], axis)


def _tiles(local):
    if isinstance(local, fl.VmapTiles):
        return local.tiles()
    if isinstance(local, fl.Concat):
        return [t for op in local.linops for t in _tiles(op)]
    return [local]


def _loss(x):
    return lambda op: op(x).abs().square().sum()


# ---- what each rank runs ------------------------------------------------------------
def _kinds(rank):
    """Forward, adjoint (against the matrix of the single-process operator), normal,
    gradient of the input, for every kind and placement."""
    out = {}
    for name, A, dim, kind in _ops():
        for placement, b in (("contiguous", 1), ("round_robin", 2)):
            key = f"{name}/{placement}/{b}"
            D = fl.distribute(A, {dim: b}, placement=placement)
            x, y = _input(A, 1), _input(A.H, 2)
            M = _dense(A, x.shape)  # built without collectives: one process's work, no waiting
            out[key] = dict(
                kind=str(D.kind), size=D.size(dim), type=type(D.N).__name__,
                tiles=len(D.layout[rank]),
                forward=_err(D(x), A(x)),
                adjoint=_err(D.H(y).flatten(), M.conj().T @ y.flatten()),
                adjoint_single=_err(D.H(y), A.H(y)),
                normal=_err(D.N(x), A.N(x)),
                normal_kind=str(getattr(D.N, "kind", None)),
                grad_x=_err(torch.func.grad(lambda x: D(x).abs().square().sum())(x),
                            torch.func.grad(lambda x: A(x).abs().square().sum())(x)),
                outputs=(D(x), D.H(y), D.N(x)),  # every rank must hold the same bits
            )
    # sharded outputs: each rank keeps its block of the output
    for name, A, dim, kind in _ops():
        if kind not in ("out", "diag"):
            continue
        D = fl.distribute(A, {dim: 1}, output="sharded")
        x, y = _input(A, 1), _input(A.H, 2)
        axis = fl.dims.axis_of(A.oshape, dim)
        xin = _block(x, fl.dims.axis_of(A.ishape, dim), rank, D.layout) if kind == "diag" else x
        ref_h = A.H(y)
        grad_full = torch.func.grad(lambda x: A(x).abs().square().sum())(x)
        if kind == "diag":
            ref_h = _block(ref_h, fl.dims.axis_of(A.ishape, dim), rank, D.layout)
        out[f"{name}/sharded"] = dict(
            size=D.size(dim), block=sum(b - a for a, b in D.layout[rank]),
            forward=_err(D(xin), _block(A(x), axis, rank, D.layout)),
            adjoint=_err(D.H(_block(y, axis, rank, D.layout)), ref_h),
            normal=_err(D.N(xin), A.N(x) if kind == "out" else _block(A.N(x), axis, rank, D.layout)),
            # each rank's loss is that of its block; the input's gradient is that of their sum
            grad_x=_err(torch.func.grad(lambda x: D(x).abs().square().sum())(xin),
                        _block(grad_full, fl.dims.axis_of(A.ishape, dim), rank, D.layout)
                        if kind == "diag" else grad_full),
        )
    return out


def _sense(rank):
    """The demo's SENSE split over coils, and a SENSE with frames split over
    frames (and over coils): apply, adjoint, normal, cg, gradients."""
    out = {}
    A = sense_operator(coil_maps(8, 8).to(torch.complex128), cartesian_mask(8, 3))
    At = frame_sense(4, 4, 6)  # 6 frames: 2, 2, 1, 1 per rank
    for name, op, dim, b in (("coils", A, "C", 1), ("coils/2", A, "C", 2),
                             ("frames", At, "T", 1), ("frames/coils", At, "C", 1)):
        D = fl.distribute(op, {dim: b})
        x, y = _input(op, 1), _input(op.H, 2)
        r = out[name] = dict(kind=str(D.kind), normal_kind=str(D.N.kind), tiles=len(D.layout[rank]),
                             forward=_err(D(x), op(x)), adjoint=_err(D.H(y), op.H(y)),
                             normal=_err(D.N(x), op.N(x)), normal_h=_err(D.H.N(y), op.H.N(y)),
                             grad_x=_err(torch.func.grad(lambda x: D(x).abs().square().sum())(x),
                                         torch.func.grad(lambda x: op(x).abs().square().sum())(x)))
        if name == "frames":  # an independent reference: the matrix, column by column
            M, Mt = _dense(op, x.shape), _dense(D, x.shape)
            r["matrix"] = _err(Mt, M)
            r["adjoint_matrix"] = _err(D.H(y).flatten(), M.conj().T @ y.flatten())

    # the gradient of a rank's leaves is its block of the single-process one
    x = _input(A, 3)
    D = fl.distribute(A, {"C": 1})
    g_maps = fl.grad(_loss(x))(A).linops[0].weight
    mine = [optree.tree_leaves(t)[0] for t in _tiles(fl.grad(_loss(x))(D).local)]  # the maps of each tile
    out["grad_coil_maps"] = _err(torch.cat(mine), _block(g_maps, 0, rank, D.layout))
    out["grad_coil_maps_shape"] = tuple(torch.cat(mine).shape)
    xt = _input(At, 3)
    Dt = fl.distribute(At, {"T": 1})
    g_ref = fl.grad(_loss(xt))(At)
    g_mine = fl.grad(_loss(xt))(Dt).local
    # the maps are shared by the frames: this rank's gradient is its frames' share (the ranks' sum is checked)
    out["grad_shared_maps"] = sum(l for l in optree.tree_leaves(g_mine) if l.is_complex())
    masks = [next(l for l in optree.tree_leaves(t) if not l.is_complex()) for t in _tiles(g_mine)]
    out["grad_frame_masks"] = _err(torch.cat(masks), _block(g_ref.linops[2].weight, 0, rank, Dt.layout))
    out["grad_maps_reference"] = g_ref.linops[0].weight

    # sharded outputs and cg: coils (one all_reduce per normal), frames (no collective)
    y = A(_input(A, 4))
    Ds = fl.distribute(A, {"C": 1}, output="sharded")
    mine_y = _block(y, 0, rank, Ds.layout)
    ref = fl.alg.cg(A.N, A.H(y), max_iter=6, tol=None)  # iteration by iteration, before it converges
    out["cg_coils"] = _err(fl.alg.cg(Ds.N, Ds.H(mine_y), max_iter=6, tol=None), ref)
    out["cg_coils_moves"] = _err(ref, fl.alg.cg(A.N, A.H(y), max_iter=5, tol=None))  # 6 ≠ 5 iterations
    yt = At(_input(At, 4))
    Dts = fl.distribute(At, {"T": 1}, output="sharded")
    xb = fl.alg.cg(Dts.N, Dts.H(_block(yt, 0, rank, Dts.layout)), max_iter=200, tol=1e-14)
    ref_t = fl.alg.cg(At.N, At.H(yt), max_iter=400, tol=1e-14)  # the whole problem, converged
    out["cg_frames"] = _err(xb, _block(ref_t, 0, rank, Dts.layout))
    # iteration by iteration, each rank's cg is the single-process cg of its frames' operator
    a, c = Dts.layout[rank][0][0], Dts.layout[rank][-1][1]  # contiguous: one block of frames
    Ab = fl.tile(At, {"T": slice(a, c)})
    yb = _block(yt, 0, rank, Dts.layout)
    out["cg_frames_iterates"] = _err(fl.alg.cg(Dts.N, Dts.H(yb), max_iter=5, tol=None),
                                     fl.alg.cg(Ab.N, Ab.H(yb), max_iter=5, tol=None))

    # more than one split dim: refused before any collective, on every rank alike
    try:
        fl.distribute(At, {"C": 1, "T": 1})
        out["two_dims"] = None
    except ValueError as e:
        out["two_dims"] = str(e)
    return out


def _leaf_bytes(op):
    """(bytes of the complex leaves: the coil maps, bytes of the others: the
    sampling indices or mask, bytes of the distinct storages of the complex
    leaves, and of the others)."""
    leaves = [t for t in optree.tree_leaves(op) if isinstance(t, torch.Tensor)]

    def storage(ts):
        return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in ts}.values())

    maps = [t for t in leaves if t.is_complex()]
    other = [t for t in leaves if not t.is_complex()]
    return sum(t.nbytes for t in maps), sum(t.nbytes for t in other), storage(maps), storage(other)


def _memory(rank):
    """The leaves each rank keeps for 16 coils split over 4 ranks."""
    A = sense_operator(coil_maps(16, 16), cartesian_mask(16, 3))
    out = {"original": _leaf_bytes(A), "maps": A.linops[0].weight.nbytes}
    for b in (1, 4):  # 4 stacked tiles of a coil per rank, or one tile of 4 coils
        out[f"tiles of {b}"] = _leaf_bytes(fl.distribute(A, {"C": b}).local)
    out["normal"] = _leaf_bytes(fl.distribute(A, {"C": 1}).N.local)
    out["split_normal"] = _leaf_bytes(fl.distribute(A.N, {"C": 1}).local)
    out["normal_original"] = _leaf_bytes(A.N)
    return out


def _solve_grad_compile(rank):
    """Gradients of local leaves, cg, the implicit gradient of solve, refusals;
    torch.compile on ranks 0 and 1 only (a process group of two: compiling
    costs each rank seconds of CPU)."""
    out = {}
    pair = dist.new_group([0, 1])  # every rank takes part in making it
    g = torch.Generator().manual_seed(3)
    W = torch.randn(5, 4, 3, dtype=torch.complex128, generator=g)
    A = fl.Dense(W, ("C", "M", "N"), ("N",), ("C", "M"))  # C: rows
    x = torch.randn(3, dtype=torch.complex128, generator=g)
    D = fl.distribute(A, {"C": 1}, placement="round_robin")
    gW = fl.grad(_loss(x))(A).weight
    tiles = [(a, t.weight) for (a, b), t in zip(D.layout[rank], _tiles(fl.grad(_loss(x))(D).local))]
    out["grad_leaves"] = max(_err(w, gW[a:a + w.shape[0]]) for a, w in tiles)
    out["grad_leaves_tiles"] = len(tiles)

    S = sense_operator(coil_maps(8, 4).to(torch.complex128), cartesian_mask(8, 2))
    DS = fl.distribute(S, {"C": 1})
    y = S(_input(S, 4))
    ref = fl.alg.cg(S.N, S.H(y), max_iter=30, tol=1e-12)
    out["cg"] = _err(fl.alg.cg(DS.N, DS.H(y), max_iter=30, tol=1e-12), ref)
    out["solve_grad"] = _err(
        torch.func.grad(lambda y: fl.alg.solve(DS.N, DS.H(y), damp=0.1).abs().square().sum())(y),
        torch.func.grad(lambda y: fl.alg.solve(S.N, S.H(y), damp=0.1).abs().square().sum())(y))
    if rank < 2:
        out.update(_compile(S, fl.distribute(S, {"C": 1}, group=pair)))

    for what, call in (("sharded_sum", lambda: fl.distribute(S.N, {"C": 1}, output="sharded")),
                       ("two_dims", lambda: fl.distribute(S, {"C": 1, "Nx": 4})),
                       ("too_few_tiles", lambda: fl.distribute(S, {"C": 2}))):
        try:
            call()
            out[what] = None
        except ValueError as e:
            out[what] = str(e)
    return out


def _compile(S, DS):
    out = {"group_size": len(DS.layout)}
    xs = _input(S, 5)
    compiled = torch.compile(lambda x: DS.N(x) + DS.H(DS(x)), fullgraph=True, backend="eager")
    out["compile"] = _err(compiled(xs), 2 * S.N(xs))
    loss = torch.compile(lambda x: DS(x).abs().square().sum(), fullgraph=True, backend="aot_eager")
    xg = xs.clone().requires_grad_()
    loss(xg).backward()
    out["compile_backward"] = _err(xg.grad, torch.func.grad(lambda x: S(x).abs().square().sum())(xs))
    try:  # torch.compile would skip the backward of the input's sum over ranks: refused
        torch.compile(torch.func.grad(lambda x: DS(x).abs().square().sum()), fullgraph=True, backend="eager")(xs)
        out["compile_func_grad"] = None
    except Exception as e:  # noqa: BLE001 - torch.compile wraps the refusal in its own error type
        out["compile_func_grad"] = str(e)
    return out


def _mismatch(rank):
    """Rank 2 passes an operator with a coil less: every rank raises, naming it."""
    S = sense_operator(coil_maps(6, 8 if rank != 2 else 7), cartesian_mask(6, 2))
    try:
        fl.distribute(S, {"C": 1})
        return None
    except ValueError as e:
        return str(e)


def _every_check(rank):
    return dict(kinds=_kinds(rank), sense=_sense(rank), memory=_memory(rank),
                solve=_solve_grad_compile(rank), mismatch=_mismatch(rank))  # the mismatch last


def _raises(rank):
    if rank == 1:
        raise KeyError("rank one fails on purpose")
    t = torch.ones(3)
    dist.all_reduce(t)  # waits for rank 1, which never comes
    return t


@pytest.fixture(scope="module")
def ranks():
    return fl.distributed.run(_every_check, nprocs=P, timeout=120)


# ---- every split kind -----------------------------------------------------------------
def test_every_kind_matches_the_single_process_operator(ranks):
    for rank, results in enumerate(ranks):
        for key, r in results["kinds"].items():
            if key.endswith("/sharded"):
                continue
            for check in ("forward", "adjoint", "adjoint_single", "normal", "grad_x"):
                assert r[check] < TOL, (rank, key, check, r[check])


def test_every_rank_holds_the_same_output_bits(ranks):
    for results in ranks[1:]:
        for key, r in results["kinds"].items():
            if "outputs" in r:
                assert all(torch.equal(a, b) for a, b in zip(r["outputs"], ranks[0]["kinds"][key]["outputs"])), key


def test_kinds_sizes_tiles_and_normals(ranks):
    r = ranks[0]["kinds"]
    assert r["sense/contiguous/1"]["kind"] == "out" and r["sense/contiguous/1"]["size"] == 7
    assert r["sense.H/contiguous/1"]["kind"] == "in"
    assert r["sense.N/round_robin/2"]["kind"] == "sum"
    assert r["batched/round_robin/2"]["kind"] == "diag"
    # the normal of rows is one all_reduce of the sum over ranks; of blocks, one gather
    assert r["sense/contiguous/1"]["type"] == "Distributed" and r["sense/contiguous/1"]["normal_kind"] == "sum"
    assert r["batched/contiguous/1"]["normal_kind"] == "diag"
    # 7 tiles of 1: 2, 2, 2, 1 (contiguous); 4 tiles of 2 (the last of 1): one each (round robin)
    assert [q["kinds"]["sense/contiguous/1"]["tiles"] for q in ranks] == [2, 2, 2, 1]
    assert [q["kinds"]["sense/round_robin/2"]["tiles"] for q in ranks] == [1, 1, 1, 1]


def test_sharded_output(ranks):
    for rank, results in enumerate(ranks):
        for name in ("sense/sharded", "batched/sharded"):
            r = results["kinds"][name]
            assert r["size"] == r["block"] == (2, 2, 2, 1)[rank]
            for check in ("forward", "adjoint", "normal", "grad_x"):
                assert r[check] < TOL, (rank, name, check, r[check])


# ---- SENSE over coils and frames ------------------------------------------------------
@pytest.mark.parametrize("name, kind, normal_kind", [
    ("coils", "out", "sum"), ("coils/2", "out", "sum"), ("frames", "diag", "diag"), ("frames/coils", "out", "sum")])
def test_sense_over_coils_and_frames(ranks, name, kind, normal_kind):
    for rank, results in enumerate(ranks):
        r = results["sense"][name]
        assert (r["kind"], r["normal_kind"]) == (kind, normal_kind)
        for check in ("forward", "adjoint", "normal", "normal_h", "grad_x"):
            assert r[check] < TOL, (rank, name, check, r[check])
    assert [q["sense"]["frames"]["tiles"] for q in ranks] == [2, 2, 1, 1]
    assert [q["sense"]["coils"]["tiles"] for q in ranks] == [2, 2, 2, 2]


def test_frame_split_against_the_matrix(ranks):
    for rank, results in enumerate(ranks):
        r = results["sense"]["frames"]
        assert r["matrix"] < TOL and r["adjoint_matrix"] < TOL, (rank, r)


def test_gradient_of_a_ranks_coil_maps_is_its_block(ranks):
    for rank, results in enumerate(ranks):
        r = results["sense"]
        assert r["grad_coil_maps_shape"] == (2, 8, 8)  # 8 coils, 2 on each rank
        assert r["grad_coil_maps"] < TOL, (rank, r["grad_coil_maps"])
        assert r["grad_frame_masks"] < TOL, (rank, r["grad_frame_masks"])
    # maps shared by every frame: each rank holds its frames' share, which sum to the whole gradient
    total = sum(q["sense"]["grad_shared_maps"] for q in ranks)
    assert _err(total, ranks[0]["sense"]["grad_maps_reference"]) < TOL
    assert _err(ranks[0]["sense"]["grad_shared_maps"], total) > 1e-3  # a share, not the whole


def test_sharded_normal_and_cg_equal_the_single_process_cg(ranks):
    for rank, results in enumerate(ranks):
        r = results["sense"]
        assert r["cg_coils"] < TOL, (rank, r["cg_coils"])  # the same iterates
        assert r["cg_coils_moves"] > 1e-6  # (the check can fail: an iteration more changes the result)
        assert r["cg_frames"] < 1e-9, (rank, r["cg_frames"])  # per-frame cg and the whole cg both converged
        assert r["cg_frames_iterates"] < TOL, (rank, r["cg_frames_iterates"])


def test_per_rank_leaf_memory_is_a_quarter(ranks):
    for rank, results in enumerate(ranks):
        r = results["memory"]
        maps, (orig_split, orig_shared, orig_storage, _) = r["maps"], r["original"]
        assert orig_split == orig_storage == maps == 16 * 16 * 16 * 8  # 16 coils of 16×16 complex64
        for key in ("tiles of 1", "tiles of 4"):
            split, shared, storage, _ = r[key]
            # the coil maps: a quarter, in leaves and in the storage they hold (their own copy,
            # not views that would keep the original's whole storage alive)
            assert split == storage == maps // 4, (rank, key, r[key])
            # the sampling indices are not split: every rank holds all of them, as the original does
            assert shared == orig_shared, (rank, key, r[key])
            assert split + shared == orig_split // 4 + orig_shared
        # the normals hold the maps and their conjugate view: one storage, a quarter of the maps;
        # and the sampling mask (16×16 int64), which is not split
        mask = r["normal_original"][3]
        assert r["normal_original"][2] == maps and mask == 16 * 16 * 8
        split, _, storage, other = r["split_normal"]  # fl.distribute(A.N, ...): the mask once
        assert storage == maps // 4 and split == 2 * maps // 4 and other == mask, (rank, r["split_normal"])
        # fl.distribute(A, ...).N builds the normal of each of its 4 stacked tiles, each with its mask
        split, _, storage, other = r["normal"]
        assert storage == maps // 4 and split == 2 * maps // 4 and other == 4 * mask, (rank, r["normal"])


def test_more_than_one_split_dim_is_refused_on_every_rank(ranks):
    msgs = {q["sense"]["two_dims"] for q in ranks}
    assert len(msgs) == 1, msgs
    msg, = msgs
    assert "exactly one dim" in msg and "['C', 'T']" in msg and "Chain((T, Nx, Ny) -> (T, C, Kx, Ky))" in msg


# ---- cg, solve, compile, refusals -----------------------------------------------------
def test_grad_of_local_leaves_is_the_ranks_part(ranks):
    for rank, results in enumerate(ranks):
        r = results["solve"]
        assert r["grad_leaves_tiles"] == (2, 1, 1, 1)[rank]  # round robin: tiles 0, 4; 1; 2; 3
        assert r["grad_leaves"] < TOL


def test_cg_solve_and_compile(ranks):
    for results in ranks:
        r = results["solve"]
        assert r["cg"] < 1e-8
        assert r["solve_grad"] < 1e-8
    for results in ranks[:2]:
        r = results["solve"]
        assert r["group_size"] == 2
        assert r["compile"] < TOL
        assert r["compile_backward"] < TOL
        assert r["compile_func_grad"] is not None


def test_refusals(ranks):
    r = ranks[0]["solve"]
    assert "output='sharded'" in r["sharded_sum"] and "'C'" in r["sharded_sum"]
    assert "exactly one dim" in r["two_dims"]
    assert "2 tiles for 4 ranks" in r["too_few_tiles"] and "at least one tile per rank" in r["too_few_tiles"]


def test_a_rank_with_another_operator_is_named(ranks):
    for r in ranks:
        assert "rank 2 differs from rank 0" in r["mismatch"], r["mismatch"]


def test_a_raising_rank_is_named_and_nothing_hangs():
    with pytest.raises(fl.distributed.RankError, match="rank 1 raised KeyError.*on purpose"):
        fl.distributed.run(_raises, 2, timeout=60)


def test_refused_before_any_process_group():
    A = fl.Dense(torch.randn(4, 3), ("C", "N"), ("N",), ("C",))
    At = frame_sense(4, 4, 4)
    with pytest.raises(ValueError, match=r"Chain\(\(T, Nx, Ny\) -> \(T, C, Kx, Ky\)\) over exactly one dim, "
                                         r"got \['C', 'T'\]"):
        fl.distribute(At, {"C": 1, "T": 1})
    with pytest.raises(ValueError, match="placement"):
        fl.distribute(A, {"C": 1}, placement="random")
    with pytest.raises(ValueError, match="batch size for dim 'C' must be positive"):
        fl.distribute(A, {"C": 0})  # checked before the process group is looked for
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match=r"splitting Dense\(.*\) over 'C' needs an initialised "
                                               r"torch.distributed process group.*init_process_group"):
            fl.distribute(A, {"C": 1})
