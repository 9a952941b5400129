"""Per-call overhead of funclinop against torchlinops and plain torch.

Cases
-----
(a) Dense 3×7 float32, forward and adjoint (adjoint built once, and built
    inside the timed call).
(b) A Chain of three Diagonals on 8×256×256 complex64, eager.
(c) The same chain under ``torch.compile(fullgraph=True)`` against plain
    torch eager.

Run ``python benchmarks/bench_core.py`` (about a minute on 2 CPU cores) or
``--quick`` for a few seconds; ``--plot PATH`` also writes a PNG of the
timings (needs matplotlib).
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, format_table, machine_line, plot_timings  # noqa: E402

import funclinop as fl  # noqa: E402

try:
    import torchlinops as tl
except ImportError:  # the comparison is optional
    tl = None

TARGETS = [
    # (description, case, candidate, baseline, limit)
    ("Dense forward <= 0.35x torchlinops", "dense", "funclinop A(x)", "torchlinops A(x)", 0.35),
    ("Chain eager <= 1.10x plain torch", "chain", "funclinop Chain(x)", "torch x*w1*w2*w3", 1.10),
    ("Chain compiled <= 1.0x plain torch eager", "compiled", "funclinop compiled", "torch eager", 1.0),
]


def dense_case(rounds):
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(3, 7, generator=gen)
    x, y = torch.randn(7, generator=gen), torch.randn(3, generator=gen)
    A = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    AH = A.H
    cands = {
        "torch W @ x": lambda: W @ x,
        "funclinop A(x)": lambda: A(x),
        "torch W.mT @ y": lambda: W.mT @ y,
        "funclinop AH(y), AH prebuilt": lambda: AH(y),
        "funclinop A.H(y), built per call": lambda: A.H(y),
    }
    if tl is not None:
        B = tl.Dense(W, ("M", "N"), ("N",), ("M",))
        BH = B.H
        cands["torchlinops A(x)"] = lambda: B(x)
        cands["torchlinops AH(y), AH prebuilt"] = lambda: BH(y)
        cands["torchlinops A.H(y), built per call"] = lambda: B.H(y)
    torch.testing.assert_close(A(x), W @ x)
    torch.testing.assert_close(AH(y), W.mT @ y)
    timing = compare(cands, rounds=rounds)
    extra = ("torchlinops A(x)",) if tl is not None else ()
    return timing, format_table("(a) Dense 3x7 float32", timing, "torch W @ x", extra)


def chain_operands():
    gen = torch.Generator().manual_seed(1)
    shape = (8, 256, 256)
    cx = lambda: torch.randn(shape, dtype=torch.complex64, generator=gen)
    x, w1, w2, w3 = cx(), cx(), cx(), cx()
    dims = fl.Dim("CNxNy")
    chain = fl.Chain(*(fl.Diagonal(w, dims) for w in (w1, w2, w3)))
    return x, (w1, w2, w3), dims, chain


def chain_case(rounds):
    x, (w1, w2, w3), dims, chain = chain_operands()
    cands = {
        "torch x*w1*w2*w3": lambda: x * w1 * w2 * w3,
        "funclinop Chain(x)": lambda: chain(x),
    }
    if tl is not None:
        tchain = tl.Chain(*(tl.Diagonal(w, dims) for w in (w1, w2, w3)))
        cands["torchlinops Chain(x)"] = lambda: tchain(x)
    torch.testing.assert_close(chain(x), x * w1 * w2 * w3)
    timing = compare(cands, rounds=rounds, target_s=5e-3)
    return timing, format_table("(b) Chain of 3 Diagonals, 8x256x256 complex64, eager", timing, "torch x*w1*w2*w3")


def compiled_case(rounds):
    x, (w1, w2, w3), _, chain = chain_operands()
    compiled = torch.compile(lambda A, x: A(x), fullgraph=True)
    # The same graph written in plain torch separates funclinop's cost
    # (guards on the operator pytree) from torch.compile's own.
    plain = torch.compile(lambda x, w1, w2, w3: x * w1 * w2 * w3, fullgraph=True)
    t = time.perf_counter()
    for _ in range(3):
        compiled(chain, x)
        plain(x, w1, w2, w3)
    compile_s = time.perf_counter() - t
    torch.testing.assert_close(compiled(chain, x), x * w1 * w2 * w3)
    cands = {
        "torch eager": lambda: x * w1 * w2 * w3,
        "funclinop compiled": lambda: compiled(chain, x),
        "torch compiled": lambda: plain(x, w1, w2, w3),
    }
    timing = compare(cands, rounds=rounds, target_s=5e-3)
    title = f"(c) Chain under torch.compile(fullgraph=True) (compile + warm-up {compile_s:.1f} s)"
    return timing, format_table(title, timing, "torch eager", ("torch compiled",))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds only (smoke test)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile case")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: leave torch's default)")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="also write a PNG of the timings to PATH (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = {"dense": 15, "chain": 7, "compiled": 7} if args.quick else {"dense": 300, "chain": 100, "compiled": 100}
    print(machine_line())
    print(f"funclinop {fl.__version__}, torchlinops {getattr(tl, '__version__', 'not installed')}")
    print(f"rounds: {rounds} (interleaved round-robin; median per-call µs; ratios are medians of same-round ratios)\n")
    results, titles = {}, {}
    for case, run in (("dense", dense_case), ("chain", chain_case), ("compiled", compiled_case)):
        if case == "compiled" and args.no_compile:
            continue
        results[case], table = run(rounds[case])
        titles[case] = table.splitlines()[0]
        print(table, "\n", flush=True)
    if args.plot:
        plot_timings(args.plot, [(titles[c], results[c]) for c in results],
                     "bench_core.py: per-call overhead", machine_line())
        print(f"wrote {args.plot}\n")
    print("targets")
    for text, case, cand, base, limit in TARGETS:
        timing = results.get(case)
        if timing is None or cand not in timing.samples or base not in timing.samples:
            print(f"  {text}: skipped")
            continue
        ratio = timing.ratio(cand, base)
        print(f"  {text}: {ratio:.3f}  {'met' if ratio <= limit else 'MISSED'}")


if __name__ == "__main__":
    main()
