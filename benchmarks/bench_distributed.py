"""Per-application cost of a SENSE normal split over coils across processes.

In each of P gloo processes on this machine (``fl.distributed.run``, one
torch thread per process), times per call, median over rounds:

- ``whole``: the single-process normal ``A.N`` (every coil, no collective);
- ``distributed``: ``fl.distribute(A, {"C": b}).N`` (this rank's coils, one
  all_reduce of the image);
- ``local``: the same rank's tiles alone, without the all_reduce;
- ``all_reduce``: one all_reduce of an image (complex64 as a real view).

``distributed - local`` (paired by round, median) is what the collective
adds per application. Each round runs every candidate in a rotating order,
all ranks together (a barrier before each).

Run ``python benchmarks/bench_distributed.py`` (``--nprocs 2 --size 128 --coils 8``).
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


def bench(rank, size, coils, batch, rounds, inner):
    A = sense_operator(coil_maps(size, coils), cartesian_mask(size, 3))
    x = torch.randn(size, size, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    D = fl.distribute(A, {"C": batch})
    N, DN = A.N, D.N
    local = DN.local
    from funclinop.distributed import _all_reduce

    group = DN.group
    s = _rounds({"whole": lambda: N(x), "distributed": lambda: DN(x), "local": lambda: local(x),
                 "all_reduce": lambda: _all_reduce(x, group)}, rounds, inner)
    out = {n: statistics.median(v) for n, v in s.items()}
    out["adds"] = statistics.median(a - b for a, b in zip(s["distributed"], s["local"]))  # paired by round
    out["coils"] = sum(b - a for a, b in D.layout[rank])
    out["error"] = float((DN(x) - N(x)).abs().max() / N(x).abs().max())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nprocs", type=int, default=2)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--batch", type=int, default=1, help="coils per tile")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--inner", type=int, default=10)
    args = p.parse_args(argv)
    print(f"SENSE normal, {args.size}×{args.size} complex64, {args.coils} coils, tiles of {args.batch}; "
          f"torch {torch.__version__}, 1 thread per process; per-call medians in µs")
    for nprocs in sorted({1, args.nprocs}):
        res = fl.distributed.run(bench, nprocs, args.size, args.coils, args.batch, args.rounds, args.inner,
                                 threads=1)
        for rank, r in enumerate(res):
            print(f"P={nprocs} rank {rank} ({r['coils']} coils): whole A.N {r['whole']:9.0f}   "
                  f"distributed {r['distributed']:9.0f}   its tiles alone {r['local']:9.0f}   "
                  f"collective adds {r['adds']:7.0f}   bare all_reduce {r['all_reduce']:6.0f}   "
                  f"rel. error {r['error']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
