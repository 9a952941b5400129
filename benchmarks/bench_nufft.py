"""NUFFT: funclinop's two backends against finufft, torchkbnufft, torchlinops and SigPy.

Problem: 2-D, N x N grid (N = 256), 8 coils, 128 golden-angle radial spokes
x 512 samples (65,536 samples, readout oversampled twice), complex64, CPU,
one thread everywhere (torch.set_num_threads(1), finufft nthreads=1, and
OMP/numba thread counts set to 1 before anything is imported).

For each candidate: forward, adjoint and normal (AᴴA: a forward then an
adjoint, or a Toeplitz normal where a candidate has one), timed interleaved
round-robin (``_timing.compare``; median per-call ms; ratios to finufft
called directly are medians of same-round ratios) in CPU time of the process
(all its threads; every candidate runs single-threaded, and on a shared
machine wall time of millisecond calls mostly measures the scheduler;
``--wall`` for wall-clock time), the relative l2 error of
forward and adjoint against finufft in double precision at eps = 1e-9, the
construction time (median of 3), and the peak memory of one forward and one
adjoint call.

finufft called directly uses one plan made at setup with n_trans = coils, at
an eps matched to the accuracy funclinop's torch backend (``fl.NUFFT``)
reaches on this problem, measured here: the largest eps at which finufft's
measured error is no larger; funclinop's finufft backend (``FiNUFFT``) gets
the same eps. Where ``fl.NUFFT`` does not exist, its rows
are skipped and torchlinops' accuracy stands in for it (said in the output).

Peak memory: the growth of the process's resident set (VmHWM after the call
minus VmRSS before it, after resetting the high-water mark through
/proc/self/clear_refs), measured in a child process started with
``MALLOC_MMAP_THRESHOLD_=65536`` so that large buffers are mapped and
unmapped rather than kept in malloc's free lists. This counts every
allocation — torch's, numpy's, and finufft's and FFTW's own C/C++ buffers,
which neither tracemalloc nor torch's profiler see — including the output.
Linux only (elsewhere the columns say n/a).

Run ``python benchmarks/bench_nufft.py`` (a few minutes on 2 cores) or
``--small`` (N = 64, 4 coils, 32 x 128 samples) for a quick run.
"""

import os

for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, machine_line  # noqa: E402

import funclinop as fl  # noqa: E402
from funclinop.nufft import FiNUFFT, radial  # noqa: E402

REFERENCE = "finufft direct"
OPS = ("forward", "adjoint", "normal")
TARGETS = [(f"funclinop FiNUFFT {op} <= 1.10x finufft direct", op, "funclinop FiNUFFT", 1.10) for op in OPS]


class Problem:
    def __init__(self, n, coils, spokes, readout):
        self.n, self.coils, self.spokes, self.readout = n, coils, spokes, readout
        self.grid = (n, n)
        self.locs = radial(spokes, readout, grid_size=n)  # (spokes, readout, 2), float32
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn((coils, n, n), dtype=torch.complex64, generator=gen)
        self.y = torch.randn((coils, spokes, readout), dtype=torch.complex64, generator=gen)
        self.scale = 1 / math.sqrt(n * n)

    def points(self, dtype=np.float32):
        """finufft's points: 2 pi locs / N in [-pi, pi), one array per dim."""
        loc = self.locs.double().reshape(-1, 2).numpy()
        return [np.ascontiguousarray(2 * np.pi * loc[:, d] / self.n, dtype=dtype) for d in range(2)]

    def reference(self):
        """Forward and adjoint in double precision, finufft at eps 1e-9."""
        import finufft

        plan = finufft.Plan(2, self.grid, self.coils, 1e-9, -1, "complex128", modeord=0, nthreads=1)
        plan.setpts(*self.points(np.float64))
        y = plan.execute(self.x.to(torch.complex128).numpy()) * self.scale
        x = plan.execute_adjoint(self.y.to(torch.complex128).reshape(self.coils, -1).numpy()) * self.scale
        return torch.from_numpy(y).reshape(self.y.shape), torch.from_numpy(x)


# ---- candidates: name -> builder(problem, eps) -> {op: zero-arg callable} ---------------------
# every forward returns (coils, spokes, readout), every adjoint and normal (coils, N, N)


def funclinop_torch(p, eps, toeplitz=False):
    A = fl.NUFFT(p.locs, p.grid, toeplitz=True) if toeplitz else fl.NUFFT(p.locs, p.grid)
    AH, AN = A.H, A.N
    return {"forward": lambda: A(p.x), "adjoint": lambda: AH(p.y), "normal": lambda: AN(p.x)}


def funclinop_toeplitz(p, eps):
    ops = funclinop_torch(p, eps, toeplitz=True)
    return {"normal": ops["normal"]}


def funclinop_finufft(p, eps):
    A = FiNUFFT(p.locs, p.grid, ishape=("C", "Nx", "Ny"), oshape=("C", "S", "R"), eps=eps)
    AH, AN = A.H, A.N
    return {"forward": lambda: A(p.x), "adjoint": lambda: AH(p.y), "normal": lambda: AN(p.x)}


def finufft_direct(p, eps):
    import finufft

    plan = finufft.Plan(2, p.grid, p.coils, eps, -1, "complex64", modeord=0, nthreads=1)
    plan.setpts(*p.points())
    x, y = p.x.numpy(), p.y.reshape(p.coils, -1).numpy()
    s = p.scale

    def forward():
        out = plan.execute(x)
        out *= s
        return out

    def adjoint():
        out = plan.execute_adjoint(y)
        out *= s
        return out

    def normal():
        out = plan.execute_adjoint(plan.execute(x))
        out *= s * s
        return out

    return {"forward": forward, "adjoint": adjoint, "normal": normal}


def torchkbnufft(p, eps):
    import torchkbnufft as tkbn

    # defaults: 2x oversampled grid, 6-point Kaiser-Bessel kernel, table interpolation;
    # same sign and centring; its norm="ortho" divides by the square root of the
    # oversampled grid's size (2N x 2N), so the results are scaled by 2 to match
    fwd, adj = tkbn.KbNufft(im_size=p.grid), tkbn.KbNufftAdjoint(im_size=p.grid)
    omega = (2 * math.pi / p.n) * p.locs.reshape(-1, 2).T.contiguous()  # (2, M) radians
    x, y = p.x[None], p.y.reshape(1, p.coils, -1)
    return {
        "forward": lambda: 2 * fwd(x, omega, norm="ortho")[0],
        "adjoint": lambda: 2 * adj(y, omega, norm="ortho")[0],
        "normal": lambda: 4 * adj(fwd(x, omega, norm="ortho"), omega, norm="ortho")[0],
    }


def torchlinops_nufft(p, eps):
    import torchlinops as tl

    # torchlinops' locs: centred grid units in [-N//2, N//2], the same as funclinop's
    A = tl.NUFFT(p.locs, p.grid, output_shape=("S", "R"), input_shape=("Nx", "Ny"), batch_shape=("C",))
    AH, AN = A.H, A.N
    return {"forward": lambda: A(p.x), "adjoint": lambda: AH(p.y), "normal": lambda: AN(p.x)}


def sigpy_nufft(p, eps):
    import sigpy

    # SigPy's coord: centred grid units, like funclinop's; default oversamp 1.25, width 4
    coord = p.locs.numpy()
    x, y = p.x.numpy(), p.y.numpy()
    oshape = (p.coils,) + p.grid
    return {
        "forward": lambda: sigpy.nufft(x, coord),
        "adjoint": lambda: sigpy.nufft_adjoint(y, coord, oshape),
        "normal": lambda: sigpy.nufft_adjoint(sigpy.nufft(x, coord), coord, oshape),
    }


CANDIDATES = {
    "funclinop NUFFT (torch)": funclinop_torch,
    "funclinop NUFFT toeplitz": funclinop_toeplitz,
    "funclinop FiNUFFT": funclinop_finufft,
    REFERENCE: finufft_direct,
    "torchkbnufft": torchkbnufft,
    "torchlinops NUFFT": torchlinops_nufft,
    "sigpy nufft": sigpy_nufft,
}


def as_tensor(out, shape):
    out = out if isinstance(out, torch.Tensor) else torch.from_numpy(np.asarray(out))
    return out.reshape(shape).to(torch.complex128)


def rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def build_all(p, eps, names):
    """{name: ops}, {name: build seconds}, {name: why skipped}."""
    built, seconds, skipped = {}, {}, {}
    for name in names:
        try:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                ops = CANDIDATES[name](p, eps)
                times.append(time.perf_counter() - t)
            for op in ops.values():  # warm up (numba and torch.compile caches, FFTW plans)
                op()
        except Exception as e:  # an optional package missing, or fl.NUFFT not there yet
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
            continue
        built[name], seconds[name] = ops, statistics.median(times)
    return built, seconds, skipped


def errors(p, built, ref):
    y_ref, x_ref = ref
    out = {}
    for name, ops in built.items():
        out[name] = {
            op: rel(as_tensor(ops[op](), want.shape), want)
            for op, want in (("forward", y_ref), ("adjoint", x_ref)) if op in ops
        }
    return out


def matched_eps(p, ref):
    """The accuracy of funclinop's torch backend (forward, against the reference),
    or torchlinops' where fl.NUFFT does not exist, and the largest finufft eps
    (steps of 10 %) whose measured forward error is no larger: finufft's
    error at a given eps is often above eps, so equal eps is not equal accuracy."""
    for name in ("funclinop NUFFT (torch)", "torchlinops NUFFT"):
        try:
            ops = CANDIDATES[name](p, None)
        except Exception:
            continue
        target = rel(as_tensor(ops["forward"](), ref[0].shape), ref[0])
        eps = target
        while eps > 1e-9:
            err = rel(as_tensor(CANDIDATES["finufft direct"](p, eps)["forward"](), ref[0].shape), ref[0])
            if err <= target:
                return target, eps, name
            eps *= 0.9
        return target, target, name
    return 1e-3, 1e-3, "none available (default 1e-3)"


# ---- peak memory, in a child process ----------------------------------------------------------


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(field)


def peak_bytes(fn):
    """Growth of the resident set during ``fn()`` (its output included)."""
    gc.collect()
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS
    out = fn()
    peak = _status("VmHWM") - before
    del out
    return peak


def memory_child(args):
    torch.set_num_threads(1)
    p = problem(args)
    built, _, _ = build_all(p, args.eps, [n for n in CANDIDATES if n != "funclinop NUFFT toeplitz"])
    result = {}
    for name, ops in built.items():
        result[name] = {op: peak_bytes(ops[op]) for op in ("forward", "adjoint")}
    print(json.dumps(result))


def measure_memory(args, eps):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, __file__, "--memory-child", "--eps", repr(eps)] + (["--small"] if args.small else [])
    try:
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=True)
        return json.loads(run.stdout.strip().splitlines()[-1])
    except Exception as e:
        print(f"(peak memory not measured: {type(e).__name__}: {str(e)[:200]})")
        return {}


# ---- the run -------------------------------------------------------------------------------------


def problem(args):
    return Problem(64, 4, 32, 128) if args.small else Problem(256, 8, 128, 512)


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def table(names, errs, timings, seconds, memory):
    head = (f"{'candidate':<26} {'err fwd':>8} {'err adj':>8}"
            + "".join(f" {op + ' ms':>11} {'/ finufft':>9}" for op in OPS)
            + f" {'build ms':>9} {'peak fwd MB':>11} {'peak adj MB':>11}")
    lines = [head, "-" * len(head)]
    for name in names:
        e = errs.get(name, {})
        row = f"{name:<26} {fmt(e.get('forward'), '8.1e')} {fmt(e.get('adjoint'), '8.1e')}"
        for op in OPS:
            t = timings[op]
            if name in t.samples:
                row += f" {t.median(name) / 1e3:>11.2f} {t.ratio(name, REFERENCE):>9.3f}"
            else:
                row += f" {'-':>11} {'-':>9}"
        mem = memory.get(name, {})
        mb = lambda op: None if op not in mem else mem[op] / 2**20
        row += f" {seconds[name] * 1e3:>9.1f} {fmt(mb('forward'), '11.1f')} {fmt(mb('adjoint'), '11.1f')}"
        lines.append(row)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="N = 64, 4 coils, 32 x 128 samples (quick)")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 15, --small 7)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child process")
    parser.add_argument("--wall", action="store_true", help="time wall-clock rather than process CPU time")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--eps", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        return memory_child(args)
    torch.set_num_threads(1)
    p = problem(args)
    rounds = args.rounds or (7 if args.small else 15)
    print(machine_line())
    print(f"2-D N = {p.n}, {p.coils} coils, {p.spokes} x {p.readout} = {p.spokes * p.readout} samples, "
          f"complex64, one thread; rounds: {rounds}; clock: {'wall' if args.wall else 'process CPU time'}\n")
    ref = p.reference()
    target, eps, source = matched_eps(p, ref)
    print(f"accuracy matched to {source}: relative error {target:.2e}; finufft eps = {eps:.2e} "
          f"(the largest with an error no larger)")
    built, seconds, skipped = build_all(p, eps, list(CANDIDATES))
    for name, why in skipped.items():
        print(f"  skipped {name}: {why}")
    errs = errors(p, built, ref)
    timings = {}
    for op in OPS:
        cands = {name: ops[op] for name, ops in built.items() if op in ops}
        clock = time.perf_counter_ns if args.wall else time.process_time_ns
        timings[op] = compare(cands, rounds=rounds, warmup=1, target_s=0.02, clock=clock)
    memory = {} if args.no_memory else measure_memory(args, eps)
    print()
    print(table(list(built), errs, timings, seconds, memory))
    print("\nerrors: relative l2 against finufft in double precision at eps 1e-9; times: median ms per call;"
          "\n/ finufft: median of same-round ratios to finufft called directly (one plan, n_trans = coils)")
    print("\ntargets")
    for text, op, name, limit in TARGETS:
        if name not in timings[op].samples:
            print(f"  {text}: skipped")
            continue
        ratio = timings[op].ratio(name, REFERENCE)
        print(f"  {text}: {ratio:.3f}  {'met' if ratio <= limit else 'MISSED'}")


if __name__ == "__main__":
    main()
