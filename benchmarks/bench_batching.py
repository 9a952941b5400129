"""Batching overhead, build time and memory.

1. SENSE 8×64×64 complex64 forward batched over coils with batch size 1:
   stacked (vmap) and looped tiles, against the unbatched operator, with
   torchlinops' batched/unbatched ratio beside it (target: ≤ 1.3×).
2. Building the batched operator: funclinop vs torchlinops'
   ``create_batched_linop`` (target: ≤ 0.3×).
3. Peak memory of applying the SENSE normal on 32×384×384 unsplit vs
   batched over coils (each variant in a fresh process: the kernel's RSS
   high-water mark, reset just before the call, above the RSS before it;
   CUDA peak allocation with ``--device cuda``).

Run ``python benchmarks/bench_batching.py`` (``--quick`` for a short run).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, format_table, machine_line  # noqa: E402
from sense import data, funclinop_sense, tl, torchlinops_sense  # noqa: E402

import funclinop as fl  # noqa: E402


def overhead(rounds, device):
    maps, mask, x = data(8, 64, device)
    A = funclinop_sense(maps, mask)
    s = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    stacked = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}))
    looped = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}, stack=False))
    torch.testing.assert_close(stacked(x), A(x))
    torch.testing.assert_close(looped(x), A(x))
    cands = {
        "funclinop unbatched": lambda: (A(x), s()),
        "funclinop C=1 stacked (vmap)": lambda: (stacked(x), s()),
        "funclinop C=1 looped": lambda: (looped(x), s()),
    }
    if tl is not None:
        R = torchlinops_sense(maps, mask)
        Rb = tl.create_batched_linop(R, tl.BatchSpec({"C": 1}))
        torch.testing.assert_close(Rb(x), A(x))
        cands["torchlinops unbatched"] = lambda: (R(x), s())
        cands["torchlinops C=1"] = lambda: (Rb(x), s())
    t = compare(cands, rounds=rounds)
    extra = ("torchlinops unbatched",) if tl is not None else ()
    print(format_table(f"\nSENSE forward 8×64×64 batched over coils ({device})", t, "funclinop unbatched", extra))
    return t


def build_time(rounds):
    maps, mask, _ = data(8, 64)
    A = funclinop_sense(maps, mask)
    cands = {"funclinop create_batched_linop": lambda: fl.create_batched_linop(A, fl.BatchSpec({"C": 1}))}
    if tl is not None:
        R = torchlinops_sense(maps, mask)
        cands["torchlinops create_batched_linop"] = lambda: tl.create_batched_linop(R, tl.BatchSpec({"C": 1}))
    t = compare(cands, rounds=rounds, target_s=5e-3)
    base = "torchlinops create_batched_linop" if tl is not None else "funclinop create_batched_linop"
    print(format_table("\nBuilding SENSE 8×64×64 batched over coils (C=1)", t, base))
    return t


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_child(variant, device):
    """Runs in a fresh process: the peak memory of one application of the normal."""
    maps, mask, x = data(32, 384, device)
    A = funclinop_sense(maps, mask).N
    if variant == "stacked":
        A = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}))
    elif variant == "looped":
        A = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}, stack=False))
    A(x)  # warm up (allocator, FFT plans)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        A(x)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        # reset the kernel's high-water mark of this process to its current
        # RSS, run once, read the new high-water mark
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _rss_bytes()
        A(x)
        peak = _hwm_bytes() - base
    print(json.dumps({"variant": variant, "peak": peak}))


def memory(device):
    out = {}
    for variant in ("unbatched", "looped", "stacked"):
        r = subprocess.run([sys.executable, __file__, "--memory-child", variant, "--device", device],
                           capture_output=True, text=True, check=True)
        out[variant] = json.loads(r.stdout.strip().splitlines()[-1])["peak"]
    print(f"\nPeak memory of one SENSE normal application, 32×384×384 complex64 ({device}):")
    for k, v in out.items():
        shown = f"{v / 2**20:8.1f} MiB"
        ratio = f"  ({v / out['unbatched']:.3f}× unbatched)"
        print(f"  {k:<10} {shown}{ratio}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args.memory_child, args.device)
    print(machine_line())
    t = overhead(20 if args.quick else 100, args.device)
    b = build_time(10 if args.quick else 40)
    m = memory(args.device)
    print("\nSummary")
    print(f"  batched C=1 forward / unbatched: stacked {t.ratio('funclinop C=1 stacked (vmap)', 'funclinop unbatched'):.2f}, "
          f"looped {t.ratio('funclinop C=1 looped', 'funclinop unbatched'):.2f} (target <= 1.3)")
    if tl is not None:
        print(f"  torchlinops batched C=1 / its unbatched: {t.ratio('torchlinops C=1', 'torchlinops unbatched'):.2f}")
        print(f"  build time / torchlinops: {b.ratio('funclinop create_batched_linop', 'torchlinops create_batched_linop'):.3f} "
              f"(target <= 0.3)")
    for k in ("looped", "stacked"):
        print(f"  peak memory {k} / unbatched: {m[k] / m['unbatched']:.3f}")


if __name__ == "__main__":
    main()
