"""Operators sharded over ``torch.distributed`` ranks.

:func:`distribute` splits an operator along one dim, as
:func:`~funclinop.create_batched_linop` does, but each rank of a process
group builds and applies only its own tiles, and collectives put the result
together: ``all_reduce`` for a dim the tiles sum over (``SUM``, ``IN``),
``all_gather`` for a dim the tiles stack along (``OUT``, ``DIAG``). The result
is an ordinary operator on every rank: ``A.H``, ``A.N``, ``torch.func.grad``,
``fl.alg.cg`` and ``torch.compile`` work on it. :func:`run` starts ``nprocs``
processes on one machine (gloo on loopback) and returns what each returned.
See ``docs/distributed.md``.
"""

import hashlib
import os
import pickle
import queue
import re
import tempfile
import time
import traceback
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.utils._pytree as tp

from .device import to
from .dims import axis_of, named
from .linop import Linop, SplitKind, derived, static
from .split import BatchSpec, _assemble, _by_name, _check_batch_sizes, _check_linop, _ranges, tile

__all__ = ["distribute", "Distributed", "run", "fingerprint"]

_PLACEMENTS = ("contiguous", "round_robin")
_OUTPUTS = ("full", "sharded")


# ---- collectives -------------------------------------------------------------------
# The functional collectives return new tensors (no in-place work on the
# input), so torch.func and torch.compile can trace them. Their own autograd
# rules differentiate the sum of every rank's loss (and do not run under
# torch.func); a distributed operator is used as an ordinary one whose input
# and output are the same on every rank, so the collectives run without
# autograd and the gradients are set as tensor parallelism sets them: the
# output's all_reduce / all_gather passes the (whole, same on every rank)
# output gradient to this rank's part unchanged / sliced, and the input
# enters through an identity whose backward sums over the ranks (each used
# a part of it).
def _fc():
    import torch.distributed._functional_collectives as fc

    return fc


def _ops():
    # the functional collectives' own ops: their Python wrappers import
    # torch._dynamo on first use (seconds per rank), the ops do not
    return torch.ops._c10d_functional


def _real(x):
    """A real view for the wire (gloo has no complex collectives)."""
    return torch.view_as_real(x.resolve_conj()) if x.is_complex() else x


def _like(y, x):
    return torch.view_as_complex(y) if x.is_complex() else y


@torch.no_grad()
def _all_reduce(x, group):
    ops = _ops()
    return _like(ops.wait_tensor(ops.all_reduce(_real(x).contiguous(), "sum", group)), x)


def _reduce_sum(x, group):
    """The sum over ranks; its gradient is the output's, unchanged (plain
    autograd, which torch.compile traces). ``x - x.detach()`` is exactly zero,
    so every rank gets the same bits."""
    return _all_reduce(x, group) + (x - x.detach())


def _select(x, axis, runs):
    """The entries ``runs`` (``(start, length)`` pairs) of ``x`` along ``axis``."""
    parts = [x.narrow(axis, s, n) for s, n in runs]
    return parts[0] if len(parts) == 1 else torch.cat(parts, axis)


@torch.no_grad()
def _all_gather(x, axis, block, nranks, group):
    """Every rank's ``x`` padded to ``block`` entries along ``axis`` (negative), rank after rank."""
    ops = _ops()
    pad = block - x.shape[axis]
    if pad:
        shape = list(x.shape)
        shape[axis] = pad
        x = torch.cat([x, x.new_zeros(shape)], axis)
    r = _real(x).contiguous()
    every = ops.wait_tensor(ops.all_gather_into_tensor(r, nranks, group))  # rank after rank along dim 0
    d = r.ndim - int(x.is_complex()) + axis
    return _like(every.view(nranks, *r.shape).movedim(0, d).flatten(d, d + 1), x)


def _gather(x, axis, plan):
    """Every rank's block of ``x`` along ``axis``, in global order.

    ``plan = (block, runs, nranks, group)``: each rank sends ``block`` entries, and
    ``runs`` (``(mine, start, length)``, in global order) takes each part from
    this rank's ``x`` (so the gradient of the output reaches ``x`` sliced) or
    from the gathered blocks."""
    block, runs, nranks, group = plan
    every = _all_gather(x, axis, block, nranks, group)
    parts = [(x if mine else every).narrow(axis, s, n) for mine, s, n in runs]
    return parts[0] if len(parts) == 1 else torch.cat(parts, axis)


class _EnterCopy(torch.autograd.Function):
    """Identity; the gradient is summed over ranks (each used part of the input)."""

    @staticmethod
    def forward(x, group):
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.group = inputs[1]

    @staticmethod
    def backward(ctx, g):
        return _all_reduce(g, ctx.group), None


def _check_traceable(op):
    # torch.compile of torch.func.grad (2.13) differentiates through the
    # forward of an autograd.Function and skips its backward, which would
    # drop the sum over ranks: refused there (with or without fullgraph).
    if torch.compiler.is_compiling() and torch._C._functorch.maybe_current_level() is not None:
        raise RuntimeError(f"{op._name()}: torch.compile of torch.func transforms of the input is not supported")


# ---- the operator ---------------------------------------------------------------------
def _merge(runs):
    """Adjacent ``(start, length)`` runs joined into one."""
    out = []
    for s, n in runs:
        if out and out[-1][0] + out[-1][1] == s:
            out[-1] = (out[-1][0], out[-1][1] + n)
        else:
            out.append((s, n))
    return tuple(out)


class Distributed(Linop):
    """This rank's part of an operator split along ``dim`` over a process group.

    Built by :func:`distribute` (on every rank). ``local`` holds this rank's
    tiles (stacked and run with ``vmap`` where they are equal); ``layout[q]``
    lists the ``(start, stop)`` tiles rank ``q`` owns along ``dim``. By
    ``kind``: ``SUM`` applies ``local`` to the whole input and sums over
    ranks; ``IN`` applies it to this rank's columns of the input and sums;
    ``OUT`` gathers every rank's rows into the whole output; ``DIAG`` takes
    this rank's block of the input and gathers the output blocks.
    ``sharded_out`` keeps this rank's block of the output (``OUT``, ``DIAG``)
    instead of gathering it, and ``sharded_in`` takes this rank's block as the
    input (``IN``, ``DIAG``); ``size(dim)`` is then the block's size. The
    input and output are otherwise the same on every rank, and gradients
    follow that: the gradient of the input is the whole one on every rank,
    that of ``local``'s leaves is this rank's part.
    """

    local: Linop
    dim: str = static()
    kind: SplitKind = static(converter=lambda k, what: SplitKind(k))
    group: str = static()
    rank: int = static()
    layout: tuple = static()
    sharded_in: bool = static(default=False)
    sharded_out: bool = static(default=False)
    ishape: tuple = derived()
    oshape: tuple = derived()
    _full: int = derived()
    _mine: tuple = derived()
    _plan: tuple = derived()

    def _check(self):
        if not isinstance(self.local, Linop):
            raise TypeError(f"Distributed: local must be a Linop, got {type(self.local).__name__}")
        kind = self.kind
        if self.sharded_out and kind not in (SplitKind.OUT, SplitKind.DIAG):
            raise ValueError(f"Distributed: a sharded output needs a dim in the output only or in both shapes; "
                             f"{self.dim!r} is {kind}")
        if self.sharded_in and kind not in (SplitKind.IN, SplitKind.DIAG):
            raise ValueError(f"Distributed: a sharded input needs a dim in the input only or in both shapes; "
                             f"{self.dim!r} is {kind}")
        if kind == SplitKind.DIAG and self.sharded_in != self.sharded_out:
            raise ValueError(f"Distributed: {self.dim!r} is in both shapes (one size per dim), "
                             f"so the input and the output are both sharded or both whole")

    def _precompute(self):
        lengths = [sum(b - a for a, b in tiles) for tiles in self.layout]
        block = max(lengths)
        runs = []
        for q, tiles in enumerate(self.layout):  # where each tile sits among the gathered blocks
            at = q * block
            for a, b in tiles:
                runs.append((a, q, at, b - a))
                at += b - a
        mine = _merge([(a, b - a) for a, b in self.layout[self.rank]])
        gather, local = [], 0
        for _, q, at, n in sorted(runs):  # each part from x (this rank's, local positions) or the gathered
            part = (q == self.rank, local if q == self.rank else at, n)
            local += n if q == self.rank else 0
            if gather and gather[-1][0] == part[0] and gather[-1][1] + gather[-1][2] == part[1]:
                gather[-1] = (part[0], gather[-1][1], gather[-1][2] + n)
            else:
                gather.append(part)
        return dict(ishape=self.local.ishape, oshape=self.local.oshape, _full=sum(lengths), _mine=mine,
                    _plan=(block, tuple(gather), len(self.layout), self.group))

    # ---- apply ---------------------------------------------------------------------
    def _enter(self, x):
        if self.sharded_in:  # this rank's own block: its gradient stays here
            return x
        _check_traceable(self)
        x = _EnterCopy.apply(x, self.group)
        if self.kind in (SplitKind.IN, SplitKind.DIAG):
            x = _select(x, axis_of(self.ishape, self.dim), self._mine)
        return x

    def _leave(self, y):
        if self.kind in (SplitKind.SUM, SplitKind.IN):
            return _reduce_sum(y, self.group)
        if self.sharded_out:
            return y
        return _gather(y, axis_of(self.oshape, self.dim), self._plan)

    def apply(self, x):
        return self._leave(self.local.apply(self._enter(x)))

    def apply_adjoint(self, y):
        return self.adjoint().apply(y)

    def _with(self, local, kind, sharded_in, sharded_out):
        return Distributed(local, self.dim, kind, self.group, self.rank, self.layout, sharded_in, sharded_out)

    def adjoint(self):
        return self._with(self.local.adjoint(), SplitKind(self.kind).reversed(), self.sharded_out, self.sharded_in)

    def normal(self):
        if self.kind == SplitKind.OUT and not self.sharded_in:  # AᴴA = Σ_r A_rᴴ A_r: one all_reduce
            return self._with(self.local.normal(), SplitKind.SUM, False, False)
        if self.kind == SplitKind.DIAG:  # block-diagonal: one gather (none when sharded)
            return self._with(self.local.normal(), SplitKind.DIAG, self.sharded_in, self.sharded_in)
        return super().normal()

    def size(self, dim):
        if dim != self.dim:
            return self.local.size(dim)
        if self.sharded_in or self.sharded_out:
            return self.local.size(dim)
        return self._full

    def _name(self):
        return f"Distributed[{self.dim}:{self.kind} rank {self.rank}/{len(self.layout)}]" + super()._name()[11:]


# ---- building it -----------------------------------------------------------------------
def _owners(count, nranks, placement):
    """The tiles (indices) of each rank."""
    if placement == "round_robin":
        return [list(range(q, count, nranks)) for q in range(nranks)]
    return [a.tolist() for a in np.array_split(np.arange(count), nranks)]


def fingerprint(tree) -> str:
    """A short hash of an operator's structure (types, static fields, leaf
    shapes and dtypes): equal on every rank that holds the same operator.

    Leaf values and devices are left out (ranks hold different devices).

    >>> import torch, funclinop as fl
    >>> a = fl.Diagonal(torch.ones(3), ("N",))
    >>> fingerprint(a) == fingerprint(fl.Diagonal(torch.zeros(3), ("N",)))
    True
    >>> fingerprint(a) == fingerprint(fl.Diagonal(torch.ones(4), ("N",)))
    False
    """
    leaves, spec = tp.tree_flatten(tree)
    desc = [re.sub(r" at 0x[0-9a-fA-F]+", "", str(spec))]
    for t in leaves:
        desc.append(f"{tuple(t.shape)}:{t.dtype}" if isinstance(t, torch.Tensor) else repr(type(t)))
    # hashlib, not hash(): Python salts str hashes per process
    return hashlib.sha256("|".join(desc).encode()).hexdigest()[:16]


def _check_same(fn, digest, group, nranks):
    every = [None] * nranks
    dist.all_gather_object(every, digest, group=group)
    differ = [q for q, d in enumerate(every) if d != every[0]]
    if differ:
        many = len(differ) > 1
        raise ValueError(f"{fn}: the operator or split on rank{'s' if many else ''} "
                         f"{', '.join(map(str, differ))} differ{'' if many else 's'} from rank 0's (fingerprints "
                         f"{', '.join(f'{q}: {every[q]}' for q in [0] + differ)}): every rank must pass "
                         f"the same operator (structure, leaf shapes and dtypes) and the same split")


def _local_device():
    if torch.cuda.is_available():  # one GPU per rank (NCCL); not tested here
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank()) or 0))
    return None


def distribute(linop: Linop, batch_sizes, *, group=None, placement: str = "contiguous",
               output: str = "full") -> Distributed:
    """This rank's part of ``linop`` split into tiles of ``batch_sizes`` over the ranks of ``group``.

    Call it on every rank of the (initialised) process group with the same
    operator. Tiles along the one split dim go to ranks ``"contiguous"``-ly
    (rank 0 the first ones) or ``"round_robin"``; there must be at least one
    tile per rank. Each rank builds only its own tiles, stacks equal tiles to
    run them with ``vmap``, and copies their leaves (to ``cuda:LOCAL_RANK``
    when CUDA is there): they hold this rank's part only, so ``linop`` can be
    dropped and a rank keeps 1/P of the split leaves. The operators of all
    ranks are compared once (one ``all_gather_object`` of a
    :func:`fingerprint`), and a rank whose operator differs is named.

    ``output="sharded"`` keeps each rank's block of the output instead of
    gathering it (an output-only or both-shapes dim): the operator's
    ``oshape`` is unchanged and ``size(dim)`` is the rank's block; for a dim
    in both shapes the input is then the rank's block too.

    >>> import torch, funclinop as fl
    >>> def rank_fn(rank):
    ...     A = fl.Dense(torch.arange(12.0).reshape(4, 3), ("C", "N"), ("N",), ("C",))
    ...     D = fl.distribute(A, {"C": 1})  # two rows per rank
    ...     return D(torch.ones(3))
    >>> fl.distributed.run(rank_fn, 2)  # doctest: +SKIP
    [tensor([ 3., 12., 21., 30.]), tensor([ 3., 12., 21., 30.])]
    """
    fn = "distribute"
    _check_linop(fn, linop)
    if isinstance(batch_sizes, BatchSpec):
        if batch_sizes.device_matrix is not None or batch_sizes.base_device is not None:
            raise ValueError(f"{fn}: a BatchSpec's device_matrix and base_device do not apply: "
                             f"tiles run on their rank's device (placement={placement!r} maps tiles to ranks)")
        batch_sizes = dict(batch_sizes.batch_sizes)
    batch_sizes = _by_name(fn, batch_sizes, "batch_sizes")
    if len(batch_sizes) != 1:
        raise ValueError(f"{fn}: splits {linop._name()} over exactly one dim, got {list(batch_sizes)} "
                         f"(split over one dim here and batch the others inside each rank's tiles)")
    if placement not in _PLACEMENTS:
        raise ValueError(f"{fn}: placement must be one of {_PLACEMENTS}, got {placement!r}")
    if output not in _OUTPUTS:
        raise ValueError(f"{fn}: output must be one of {_OUTPUTS}, got {output!r}")
    (dim, b), = batch_sizes.items()
    n = _check_batch_sizes(fn, linop, batch_sizes)[dim]
    kind = linop.split_kind(dim)
    if output == "sharded" and kind not in (SplitKind.OUT, SplitKind.DIAG):
        raise ValueError(f"{fn}: output='sharded' keeps each rank's block of the output, but dim {dim!r} "
                         f"of {linop._name()} is {kind} (its tiles sum into the whole output)")
    if not dist.is_available() or not dist.is_initialized():  # after the checks that need no ranks
        raise RuntimeError(f"{fn}: splitting {linop._name()} over {dim!r} needs an initialised torch.distributed "
                           f"process group (call torch.distributed.init_process_group first, "
                           f"or use fl.distributed.run)")
    group = group if group is not None else dist.group.WORLD
    rank, nranks = dist.get_rank(group), dist.get_world_size(group)
    ranges = _ranges(n, b)
    if len(ranges) < nranks:
        raise ValueError(f"{fn}: dim {dim!r} of size {n} in tiles of {b} gives {len(ranges)} tiles "
                         f"for {nranks} ranks; use a smaller batch size (at least one tile per rank)")
    owners = _owners(len(ranges), nranks, placement)
    layout = tuple(tuple((ranges[k].start, ranges[k].stop) for k in ks) for ks in owners)
    _check_same(fn, fingerprint((linop, dim, b, placement, output)), group, nranks)
    mine = layout[rank]
    tiles = [tile(linop, {dim: slice(a, c)}) for a, c in mine]
    idim = dim if kind in (SplitKind.DIAG, SplitKind.IN) else None
    odim = dim if kind in (SplitKind.DIAG, SplitKind.OUT) else None
    local = _assemble(tiles, idim, odim, stack=True, extents=[c - a for a, c in mine])
    # its own copy of this rank's part (on cuda:LOCAL_RANK where CUDA is): the
    # tiles are views of linop's leaves, which would keep them whole
    local = to(local, _local_device(), copy=True)
    sharded = output == "sharded"
    return Distributed(local, dim, kind, _group_name(group), rank, layout,
                       sharded and kind == SplitKind.DIAG, sharded)


def _group_name(group):
    return group.group_name


# ---- launching ------------------------------------------------------------------------
class RankError(RuntimeError):
    """A rank started by :func:`run` raised, died or timed out."""


def _worker(fn, rank, nprocs, store_path, results, args, timeout, threads):
    report = None
    try:
        torch.set_num_threads(threads)
        if "GLOO_SOCKET_IFNAME" not in os.environ and os.path.exists("/sys/class/net/lo"):
            # ranks on this machine talk over loopback (127.0.0.1), whatever the hostname resolves to
            os.environ["GLOO_SOCKET_IFNAME"] = "lo"
        store = dist.FileStore(store_path, nprocs)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=nprocs,
                                timeout=timedelta(seconds=timeout))
        try:
            out = fn(rank, *args)
            out = tp.tree_map_only(torch.Tensor, lambda t: _fc().wait_tensor(t) if _is_async(t) else t, out)
            report = ("ok", rank, pickle.dumps(out))
        except BaseException as e:  # noqa: BLE001 - reported to the caller, which raises
            report = _failure(rank, e)  # timed before leaving the group: the others fail on its way out
        dist.destroy_process_group()
    except BaseException as e:  # noqa: BLE001 - setting up or leaving the group
        report = report or _failure(rank, e)
    results.put(report)


def _failure(rank, e):
    return ("error", rank, f"{type(e).__name__}: {e}", traceback.format_exc(), time.time())


def _is_async(t):
    return type(t).__name__ == "AsyncCollectiveTensor"


def run(fn, nprocs: int, *args, timeout: float = 120.0, threads: int | None = None) -> list:
    """Run ``fn(rank, *args)`` in ``nprocs`` processes with a gloo process group
    on this machine; the list of what each rank returned (pickled back).

    ``fn`` and ``args`` must be picklable (``fn`` defined at module level).
    The ranks meet through a ``FileStore`` in a temporary directory (no port
    to pick) and talk over loopback (``GLOO_SOCKET_IFNAME=lo`` where Linux
    has it and it is not set already). The process group's ``timeout`` (seconds) bounds every
    collective, and the whole run: a rank that raises or dies is reported
    as a :class:`RankError` naming it, and the other processes are killed.
    ``threads`` sets each rank's torch threads (default: the CPUs shared out).
    """
    import multiprocessing as mp

    if not dist.is_available():
        raise RuntimeError("fl.distributed.run: torch.distributed is not available in this torch build")
    if isinstance(nprocs, bool) or not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"fl.distributed.run: nprocs must be a positive int, got {nprocs!r}")
    threads = threads or max(1, (os.cpu_count() or 1) // nprocs)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [ctx.Process(target=_worker, daemon=True,
                             args=(fn, r, nprocs, os.path.join(tmp, "store"), results, args, timeout, threads))
                 for r in range(nprocs)]
        for p in procs:
            p.start()
        try:
            return _collect(procs, results, timeout)
        finally:
            for p in procs:  # only the processes started here
                if p.is_alive():
                    p.kill()
                p.join()


def _collect(procs, results, timeout):
    out, deadline = {}, time.monotonic() + timeout + 60  # start-up (imports) on top of the collectives' bound
    while len(out) < len(procs):
        try:
            msg = results.get(timeout=0.2)
        except queue.Empty:
            for r, p in enumerate(procs):
                if r not in out and p.exitcode is not None and results.empty():
                    time.sleep(0.5)  # its last message may still be on the way
                    if results.empty():
                        raise RankError(f"rank {r} exited with code {p.exitcode} without a result") from None
            if time.monotonic() > deadline:
                missing = [r for r in range(len(procs)) if r not in out]
                raise RankError(f"ranks {missing} gave no result within {timeout:.0f} s (+60 s start-up)") from None
            continue
        if msg[0] == "error":
            _raise_first(msg, procs, results, out)
        out[msg[1]] = pickle.loads(msg[2])
    return [out[r] for r in range(len(procs))]


def _raise_first(msg, procs, results, out, grace=3.0):
    """Raise for the rank that failed first: a rank that raises closes its
    connections, and the ranks waiting on it then fail too, maybe sooner
    than its own report arrives, so the reports of a short while are compared."""
    errors, deadline = {msg[1]: msg}, time.monotonic() + grace
    while len(errors) + len(out) < len(procs) and time.monotonic() < deadline:
        try:
            m = results.get(timeout=0.1)
        except queue.Empty:
            continue
        if m[0] == "error":
            errors[m[1]] = m
        else:
            out[m[1]] = None
    _, r, what, tb, _ = min(errors.values(), key=lambda m: m[4])
    others = "".join(f"\n(rank {q} failed after it: {m[2].splitlines()[0][:200]})"
                     for q, m in sorted(errors.items()) if q != r)
    raise RankError(f"rank {r} raised {what}{others}\n--- traceback of rank {r} ---\n{tb}")
