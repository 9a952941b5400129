"""fl.distribute over gloo ranks on this machine, against the single-process operator.

Starting a rank costs seconds (importing torch), so each spawned function runs
many checks and returns their results; the tests compare them.
"""

import pytest
import torch
import torch.distributed as dist

import funclinop as fl
from funclinop.demo import cartesian_mask, coil_maps, sense_operator

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

TOL = dict(rtol=1e-10, atol=1e-10)


def _ops(n=6, C=5, B=5):
    """(name, operator, split dim, kind): every split kind, with uneven tiles."""
    g = torch.Generator().manual_seed(0)
    A = sense_operator(coil_maps(n, C).to(torch.complex128), cartesian_mask(n, 2))
    W = torch.randn(B, 3, 4, dtype=torch.complex128, generator=g)
    Dg = fl.Dense(W, ("B", "M", "N"), ("B", "N"), ("B", "M"))  # B in both shapes
    return [("sense", A, "C", "out"), ("sense.H", A.H, "C", "in"), ("sense.N", A.N, "C", "sum"),
            ("batched", Dg, "B", "diag")]


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


def _kinds(rank):
    """Forward, adjoint (against the dense matrix), normal, gradients, cg, for every kind and placement."""
    out = {}
    for name, A, dim, kind in _ops():
        for placement, b in (("contiguous", 1), ("round_robin", 2)):
            key = f"{name}/{placement}/{b}"
            D = fl.distribute(A, {dim: b}, placement=placement)
            x, y = _input(A, 1), _input(A.H, 2)
            M = _dense(D, x.shape)
            out[key] = dict(
                kind=str(D.kind), size=D.size(dim), type=type(D.N).__name__,
                forward=_err(D(x), A(x)),
                adjoint=_err(D.H(y).flatten(), M.conj().T @ y.flatten()),
                adjoint_single=_err(D.H(y), A.H(y)),
                normal=_err(D.N(x), A.N(x)),
                normal_kind=str(getattr(D.N, "kind", None)),
                grad_x=_err(torch.func.grad(lambda x: D(x).abs().square().sum())(x),
                            torch.func.grad(lambda x: A(x).abs().square().sum())(x)),
            )
    # sharded outputs: each rank keeps its block of the output
    for name, A, dim, kind in _ops():
        if kind not in ("out", "diag"):
            continue
        D = fl.distribute(A, {dim: 1}, output="sharded")
        x, y = _input(A, 1), _input(A.H, 2)
        axis = fl.dims.axis_of(A.oshape, dim)
        full_y = A(x)
        xin = _block(x, fl.dims.axis_of(A.ishape, dim), rank, D.layout) if kind == "diag" else x
        y_mine = _block(y, axis, rank, D.layout)
        ref_h = A.H(y)
        grad_full = torch.func.grad(lambda x: A(x).abs().square().sum())(x)
        if kind == "diag":
            ref_h = _block(ref_h, fl.dims.axis_of(A.ishape, dim), rank, D.layout)
        out[f"{name}/sharded"] = dict(
            size=D.size(dim), block=sum(b - a for a, b in D.layout[rank]),
            forward=_err(D(xin), _block(full_y, axis, rank, D.layout)),
            adjoint=_err(D.H(y_mine), ref_h),
            normal=_err(D.N(xin), A.N(x) if kind == "out" else _block(A.N(x), axis, rank, D.layout)),
            # each rank's loss is that of its block; the input's gradient is that of their sum
            grad_x=_err(torch.func.grad(lambda x: D(x).abs().square().sum())(xin),
                        _block(grad_full, fl.dims.axis_of(A.ishape, dim), rank, D.layout)
                        if kind == "diag" else grad_full),
        )
    return out


def _tiles(local):
    if isinstance(local, fl.VmapTiles):
        return local.tiles()
    if isinstance(local, fl.Concat):
        return [t for op in local.linops for t in _tiles(op)]
    return [local]


def _solve_grad_compile(rank):
    """Gradients of local leaves, cg, torch.compile, refusals."""
    out = {}
    g = torch.Generator().manual_seed(3)
    W = torch.randn(5, 4, 3, dtype=torch.complex128, generator=g)
    A = fl.Dense(W, ("C", "M", "N"), ("N",), ("C", "M"))  # C: rows
    x = torch.randn(3, dtype=torch.complex128, generator=g)
    D = fl.distribute(A, {"C": 1}, placement="round_robin")
    loss = lambda op: op(x).abs().square().sum()  # noqa: E731
    gW = fl.grad(loss)(A).weight
    tiles = [(a, t.weight) for (a, b), t in zip(D.layout[rank], _tiles(fl.grad(loss)(D).local))]
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

    for what, call in (("sharded_sum", lambda: fl.distribute(S.N, {"C": 1}, output="sharded")),
                       ("two_dims", lambda: fl.distribute(S, {"C": 1, "Nx": 4})),
                       ("too_few_tiles", lambda: fl.distribute(S, {"C": 4}))):
        try:
            call()
            out[what] = None
        except ValueError as e:
            out[what] = str(e)
    return out


def _three_ranks(rank):
    """Uneven tiles over 3 ranks, and a rank whose operator differs."""
    out = {}
    for name, A, dim, kind in _ops(C=7, B=7):
        D = fl.distribute(A, {dim: 2})  # 4 tiles (2, 2, 2, 1) over 3 ranks
        x, y = _input(A, 1), _input(A.H, 2)
        out[name] = (_err(D(x), A(x)), _err(D.H(y), A.H(y)), _err(D.N(x), A.N(x)))
        out[name + "/outputs"] = (D(x), D.H(y), D.N(x))
    S = sense_operator(coil_maps(6, 6 if rank != 2 else 5), cartesian_mask(6, 2))
    try:
        fl.distribute(S, {"C": 1})
        out["mismatch"] = None
    except ValueError as e:
        out["mismatch"] = str(e)
    return out


def _raises(rank):
    if rank == 1:
        raise KeyError("rank one fails on purpose")
    t = torch.ones(3)
    dist.all_reduce(t)  # waits for rank 1, which never comes
    return t


@pytest.fixture(scope="module")
def kinds():
    return fl.distributed.run(_kinds, 2)


def test_every_kind_matches_the_single_process_operator(kinds):
    for rank, results in enumerate(kinds):
        for key, r in results.items():
            if key.endswith("/sharded"):
                continue
            for check in ("forward", "adjoint", "adjoint_single", "normal", "grad_x"):
                assert r[check] < 1e-10, (rank, key, check, r[check])


def test_kinds_sizes_and_normals(kinds):
    r = kinds[0]
    assert r["sense/contiguous/1"]["kind"] == "out" and r["sense/contiguous/1"]["size"] == 5
    assert r["sense.H/contiguous/1"]["kind"] == "in"
    assert r["sense.N/round_robin/2"]["kind"] == "sum"
    assert r["batched/round_robin/2"]["kind"] == "diag"
    # the normal of rows is one all_reduce of the sum over ranks; of blocks, one gather
    assert r["sense/contiguous/1"]["type"] == "Distributed" and r["sense/contiguous/1"]["normal_kind"] == "sum"
    assert r["batched/contiguous/1"]["normal_kind"] == "diag"


def test_sharded_output(kinds):
    for rank, results in enumerate(kinds):
        for name in ("sense/sharded", "batched/sharded"):
            r = results[name]
            assert r["size"] == r["block"] == (3, 2)[rank]  # 5 tiles of 1: 3 on rank 0, 2 on rank 1
            for check in ("forward", "adjoint", "normal", "grad_x"):
                assert r[check] < 1e-10, (rank, name, check, r[check])


@pytest.fixture(scope="module")
def solve_grad_compile():
    return fl.distributed.run(_solve_grad_compile, 2)


def test_grad_of_local_leaves_is_the_ranks_part(solve_grad_compile):
    for rank, r in enumerate(solve_grad_compile):
        assert r["grad_leaves_tiles"] == (3, 2)[rank]  # round robin: tiles 0, 2, 4 and 1, 3
        assert r["grad_leaves"] < 1e-10


def test_cg_solve_and_compile(solve_grad_compile):
    for r in solve_grad_compile:
        assert r["cg"] < 1e-8
        assert r["solve_grad"] < 1e-8
        assert r["compile"] < 1e-10
        assert r["compile_backward"] < 1e-10
        assert r["compile_func_grad"] is not None


def test_refusals(solve_grad_compile):
    r = solve_grad_compile[0]
    assert "output='sharded'" in r["sharded_sum"] and "'C'" in r["sharded_sum"]
    assert "exactly one dim" in r["two_dims"]
    assert "1 tiles for 2 ranks" in r["too_few_tiles"] and "at least one tile per rank" in r["too_few_tiles"]


def test_uneven_tiles_and_mismatch_over_three_ranks():
    results = fl.distributed.run(_three_ranks, 3)
    for rank, r in enumerate(results):
        for name in ("sense", "sense.H", "sense.N", "batched"):
            assert max(r[name]) < 1e-10, (rank, name, r[name])
            # every rank holds the same output, to the bit
            assert all(torch.equal(a, b) for a, b in zip(r[name + "/outputs"], results[0][name + "/outputs"]))
        assert "rank 2 differs from rank 0" in r["mismatch"], r["mismatch"]


def test_a_raising_rank_is_named_and_nothing_hangs():
    with pytest.raises(fl.distributed.RankError, match="rank 1 raised KeyError.*on purpose"):
        fl.distributed.run(_raises, 2, timeout=60)


def test_refused_before_any_process_group():
    A = fl.Dense(torch.randn(4, 3), ("C", "N"), ("N",), ("C",))
    with pytest.raises(ValueError, match="exactly one dim"):
        fl.distribute(A, {"C": 1, "N": 1})
    with pytest.raises(ValueError, match="placement"):
        fl.distribute(A, {"C": 1}, placement="random")
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="init_process_group"):
            fl.distribute(A, {"C": 1})
