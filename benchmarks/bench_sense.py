"""SENSE forward, adjoint and normal: funclinop (eager and compiled) vs
hand-written torch vs torchlinops, side by side in one run, medians.

The model is Sampling ∘ FFT(centered) ∘ Dense(coil maps), complex64, on
C×N×N = 8×64×64 and 16×256×256. Ratios are paired medians against plain
torch eager (targets: eager ≤ 1.10×, compiled ≤ 1.0×).

Run ``python benchmarks/bench_sense.py`` (``--quick`` for a short run,
``--device cuda`` on a GPU, ``--plot PATH`` for a PNG of the timings, which
needs matplotlib).
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, format_table, machine_line, plot_timings  # noqa: E402
from sense import Plain, data, funclinop_sense, tl, torchlinops_sense  # noqa: E402


def sync(device):
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def run(C, N, rounds, device, compile_):
    maps, mask, x = data(C, N, device)
    A = funclinop_sense(maps, mask)
    plain = Plain(maps, mask)
    y = A(x)
    ops = {"forward": (A, plain.forward, x), "adjoint": (A.H, plain.adjoint, y), "normal": (A.N, plain.normal, x)}
    ref = torchlinops_sense(maps, mask) if tl is not None else None
    refs = {"forward": ref, "adjoint": ref.H if ref is not None else None, "normal": ref.N if ref is not None else None}
    s = sync(device)
    results = {}
    for name, (op, hand, arg) in ops.items():
        torch.testing.assert_close(op(arg), hand(arg), rtol=1e-4, atol=1e-3)
        cands = {"torch eager": lambda: (hand(arg), s()), "funclinop eager": lambda: (op(arg), s())}
        if compile_:
            f = torch.compile(lambda A, v: A(v), fullgraph=True)
            torch.testing.assert_close(f(op, arg), hand(arg), rtol=1e-4, atol=1e-3)
            cands["funclinop compiled"] = lambda: (f(op, arg), s())
            g = torch.compile(hand, fullgraph=True)
            g(arg)
            cands["torch compiled"] = lambda: (g(arg), s())
        if refs[name] is not None:
            r = refs[name]
            torch.testing.assert_close(r(arg), hand(arg), rtol=1e-4, atol=1e-3)
            cands["torchlinops"] = lambda: (r(arg), s())
        timing = compare(cands, rounds=rounds)
        print(format_table(f"\nSENSE {name}, C×N×N = {C}×{N}×{N} complex64 ({device})", timing, "torch eager"))
        results[name] = timing
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--plot", metavar="PATH", default=None,
                   help="also write a PNG of the timings to PATH (needs matplotlib)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    summary, panels = [], []
    for C, N, rounds in ((8, 64, 20 if args.quick else 100), (16, 256, 5 if args.quick else 30)):
        res = run(C, N, rounds, args.device, not args.no_compile)
        for name, t in res.items():
            panels.append((f"SENSE {name}, C×N×N = {C}×{N}×{N} complex64 ({args.device})", t))
            row = [f"{C}x{N}x{N} {name}", t.ratio("funclinop eager", "torch eager")]
            row.append(t.ratio("funclinop compiled", "torch eager") if "funclinop compiled" in t.names else float("nan"))
            row.append(t.ratio("torchlinops", "torch eager") if "torchlinops" in t.names else float("nan"))
            row.append(t.ratio("torch compiled", "torch eager") if "torch compiled" in t.names else float("nan"))
            summary.append(row)
    print("\nSummary (paired median ratio to plain torch eager; targets: eager <= 1.10, compiled <= 1.0)")
    print(f"{'case':<22} {'funclinop':>10} {'compiled':>10} {'torchlinops':>12} {'torch compiled':>15}")
    for case, e, c, r, tc in summary:
        print(f"{case:<22} {e:>10.3f} {c:>10.3f} {r:>12.3f} {tc:>15.3f}")
    if args.plot:
        plot_timings(args.plot, panels, "bench_sense.py: SENSE forward, adjoint and normal", machine_line())
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
