"""Per-application cost of a SENSE normal split over coils across processes.

The problem (the defaults): the demo's SENSE operator, 16 coils × 256 × 256,
complex64, its normal ``AᴴA`` split over coils (``fl.distribute(A.N, {"C": b})``:
each rank applies its coils, then one all_reduce of the image; the same
collective as ``fl.distribute(A, {"C": b}).N``). For P = 1 and
P = ``--nprocs`` gloo processes on this machine (``fl.distributed.run``, one
torch thread per process), each rank times per call, median over rounds:

- ``whole``: the single-process normal ``A.N`` (every coil, no collective);
- ``distributed``: the distributed normal (this rank's coils, one all_reduce);
- ``tiles``: the same rank's tiles alone, without the all_reduce;
- ``all_reduce``: one all_reduce of an image (complex64 as a real view).

``distributed - tiles`` (paired by round, median) is what the collective adds
per application. Each round runs every candidate in a rotating order, all
ranks together (a barrier before each).

Bytes communicated per application are computed from the shapes, not
measured: the normal sends one all_reduce of the image, S = Nx·Ny·8 bytes
(complex64), and a ring all-reduce (reduce-scatter then all-gather) sends
2(P−1)/P · S bytes from each rank and receives as many (gloo may pick
another algorithm; the ring is the bandwidth-optimal one). ``MB/s`` is that
volume over the measured bare all_reduce. Leaf memory is measured from the
distributed operator's leaves on each rank: the bytes of the distinct
storages they hold (the coil maps, once for the maps and their conjugate,
and the sampling mask, which is not split), next to those of
``fl.distribute(A, {"C": b}).N`` (which holds the mask once per stacked
tile) and of the whole normal.

Run ``python benchmarks/bench_distributed.py`` (``--nprocs 2 --size 256
--coils 16 --batch 1 --rounds 9 --inner 3``).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

import funclinop as fl  # noqa: E402
from funclinop.demo import cartesian_mask, coil_maps, sense_operator  # noqa: E402
from funclinop.linop import optree  # noqa: E402


def _rounds(fns, rounds, inner):
    """Per-call µs of each candidate: each round runs them all, in a rotating
    order (drifts of the machine's load hit them alike)."""
    names = list(fns)
    samples = {n: [] for n in names}
    for fn in fns.values():
        fn()
    for k in range(rounds):
        for n in names[k % len(names):] + names[:k % len(names)]:
            dist.barrier()
            t = time.perf_counter()
            for _ in range(inner):
                fns[n]()
            samples[n].append((time.perf_counter() - t) / inner * 1e6)
    return samples


def leaf_bytes(op):
    """Bytes of the distinct storages the tensor leaves of ``op`` hold."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for t in optree.tree_leaves(op) if isinstance(t, torch.Tensor)}
    return sum(storages.values())


def ring_bytes(image_bytes, nprocs):
    """Bytes each rank sends (and receives) in a ring all-reduce of ``image_bytes``."""
    return 2 * (nprocs - 1) * image_bytes // nprocs


def bench(rank, size, coils, batch, rounds, inner):
    A = sense_operator(coil_maps(size, coils), cartesian_mask(size, 3))
    x = torch.randn(size, size, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    N = A.N
    DN = fl.distribute(N, {"C": batch})
    tiles = DN.local
    from funclinop.distributed import _all_reduce

    group = DN.group
    s = _rounds({"whole": lambda: N(x), "distributed": lambda: DN(x), "tiles": lambda: tiles(x),
                 "all_reduce": lambda: _all_reduce(x, group)}, rounds, inner)
    out = {n: statistics.median(v) for n, v in s.items()}
    out["adds"] = statistics.median(a - b for a, b in zip(s["distributed"], s["tiles"]))  # paired by round
    out["coils"] = sum(b - a for a, b in DN.layout[rank])
    out["leaves"], out["leaves_whole"] = leaf_bytes(tiles), leaf_bytes(N)
    out["leaves_dn"] = leaf_bytes(fl.distribute(A, {"C": batch}).N.local)
    out["image_bytes"] = x.nbytes
    out["error"] = float((DN(x) - N(x)).abs().max() / N(x).abs().max())
    return out


HEADER = (f"{'P':>2} {'rank':>4} {'coils':>5} {'whole A.N':>10} {'distributed':>11} {'tiles':>9} "
          f"{'coll. adds':>10} {'all_reduce':>10} {'sent/rank':>10} {'MB/s':>6} {'leaves/rank':>12} "
          f"{'D.N leaves':>11} {'whole A.N':>10} {'rel. err':>8}")


def row(nprocs, rank, r):
    sent = ring_bytes(r["image_bytes"], nprocs)
    rate = f"{sent / r['all_reduce']:6.0f}" if sent else f"{'-':>6}"  # bytes per µs = MB/s
    return (f"{nprocs:>2} {rank:>4} {r['coils']:>5} {r['whole']:>10.0f} {r['distributed']:>11.0f} "
            f"{r['tiles']:>9.0f} {r['adds']:>10.0f} {r['all_reduce']:>10.0f} {sent:>10,} {rate} "
            f"{r['leaves']:>12,} {r['leaves_dn']:>11,} {r['leaves_whole']:>10,} {r['error']:>8.1e}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nprocs", type=int, default=2, help="processes to compare with one")
    p.add_argument("--size", type=int, default=256, help="image side (Nx = Ny)")
    p.add_argument("--coils", type=int, default=16)
    p.add_argument("--batch", type=int, default=1, help="coils per tile")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--inner", type=int, default=3, help="calls per timing")
    args = p.parse_args(argv)
    image = args.size * args.size * 8
    print(f"SENSE normal, {args.coils} coils × {args.size} × {args.size} complex64, split over coils in "
          f"tiles of {args.batch}; torch {torch.__version__}, 1 thread per process, gloo on this machine.")
    print(f"Times: per application, median of {args.rounds} rounds of {args.inner} calls, in µs. "
          f"sent/rank: bytes each rank sends per application, one ring all_reduce of the "
          f"{image:,}-byte image, 2(P-1)/P × image (computed). MB/s: that over the bare all_reduce. "
          f"leaves/rank: bytes of the distributed normal's leaves on the rank (distinct storages); "
          f"D.N leaves: those of fl.distribute(A, ...).N; whole A.N: the whole normal's.")
    print(HEADER)
    for nprocs in sorted({1, args.nprocs}):
        res = fl.distributed.run(bench, nprocs, args.size, args.coils, args.batch, args.rounds, args.inner,
                                 threads=1, timeout=600)
        for rank, r in enumerate(res):
            print(row(nprocs, rank, r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
