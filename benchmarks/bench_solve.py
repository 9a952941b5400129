"""CG-SENSE with fl.alg.solve: speed against a hand-written torch loop and torchlinops,
memory of implicit against unrolled gradients, and polynomial preconditioning.

1. 30 CG iterations on (AᴴA + λI) x = Aᴴy, SENSE C×N×N = 8×128×128
   complex64, side by side: funclinop ``solve``, funclinop ``cg``, torchlinops'
   ``conjugate_gradients`` and a hand-written torch CG loop, on hand-written
   torch operators and on funclinop's (paired medians, target: solve ≤ 1.05×
   the loop).
2. Peak memory of ``torch.func.grad`` (with respect to the coil maps) through
   100 CG iterations: unrolled (``fl.alg.cg``) against implicit
   (``fl.alg.solve``), as the peak of the bytes held by the tensors the
   gradient creates (counted exactly by a dispatch mode, so the figure does
   not depend on the allocator or the machine). Target: implicit ≤ 1/10 of
   unrolled.
3. Polynomial preconditioners: CG iterations and time to reach the same
   relative residual with and without them.

Run ``python benchmarks/bench_solve.py`` (``--quick`` for a short run); one
thread by default (``--threads``). With one thread, section 1 counts the
thread's CPU time, which load from other processes on a shared machine does
not inflate (``--wall-time`` for the wall clock).
"""

import argparse
import statistics
import sys
import time
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parent))
import funclinop as fl  # noqa: E402
from _timing import compare, format_table, machine_line  # noqa: E402
from sense import Plain, data, funclinop_sense, tl, torchlinops_sense  # noqa: E402

LAM = 1e-2


def hand_written_cg(normal, b, iters):
    """Textbook CG, as one would write it without a library."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = torch.vdot(r.flatten(), r.flatten()).real
    for _ in range(iters):
        Ap = normal(p)
        alpha = rs / torch.vdot(p.flatten(), Ap.flatten()).real
        x = x + alpha * p
        r = r - alpha * Ap
        rs_new = torch.vdot(r.flatten(), r.flatten()).real
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


def speed(C, N, iters, rounds, clock):
    maps, mask, x = data(C, N)
    A = funclinop_sense(maps, mask)
    S = A.N + LAM * fl.Identity(fl.Dim("NxNy"))
    plain = Plain(maps, mask)
    b = A.H(A(x))

    def plain_normal(v):
        return plain.normal(v) + LAM * v

    cands = {
        "torch loop": lambda: hand_written_cg(plain_normal, b, iters),
        # the same loop on funclinop's operator: the difference to solve is the solver's own
        "torch loop, fl operator": lambda: hand_written_cg(S, b, iters),
        "funclinop solve": lambda: fl.alg.solve(S, b, tol=None, max_iter=iters),
        "funclinop cg": lambda: fl.alg.cg(S, b, tol=None, max_iter=iters),
    }
    if tl is not None:
        from torchlinops.alg import conjugate_gradients

        T = torchlinops_sense(maps, mask).N

        def tl_normal(v):
            return T(v) + LAM * v

        cands["torchlinops cg"] = lambda: conjugate_gradients(
            tl_normal, b, max_num_iters=iters, disable_tracking=True, tqdm_kwargs={"disable": True})
    want = cands["torch loop"]()
    for name, f in cands.items():
        torch.testing.assert_close(f(), want, rtol=1e-3, atol=1e-3 * float(want.abs().max()))
    timing = compare(cands, rounds=rounds, warmup=1, target_s=1e-3, clock=clock)
    what = "thread CPU time" if clock is time.thread_time_ns else "wall time"
    title = f"\n1. CG-SENSE, {iters} iterations, C×N×N = {C}×{N}×{N} complex64 (cpu, {what})"
    print(format_table(title, timing, "torch loop", ("torch loop, fl operator",)))
    for name, base in (("funclinop solve", "torch loop"), ("torch loop, fl operator", "torch loop"),
                       ("funclinop solve", "torch loop, fl operator")):
        lo, mid, hi = _quartiles(timing, name, base)
        fastest = min(timing.samples[name]) / min(timing.samples[base])
        print(f"   {name} / {base}: {mid:.3f} (quartiles of the paired ratios {lo:.3f}-{hi:.3f}; "
              f"ratio of the fastest runs {fastest:.3f})")
    print("   target: funclinop solve / torch loop <= 1.05")
    if tl is None:
        print("   (torchlinops is not installed: its column is missing)")


def _quartiles(timing, name, base):
    ratios = sorted(a / b for a, b in zip(timing.samples[name], timing.samples[base]))
    return tuple(statistics.quantiles(ratios, n=4)) if len(ratios) > 1 else (ratios[0],) * 3


# ---- 2. memory -----------------------------------------------------------------------------


class PeakTensorMemory(TorchDispatchMode):
    """The peak of the bytes held by tensor storages created while the mode is on.

    Every op's outputs pass through ``__torch_dispatch__`` (below the
    ``torch.func`` transforms, so saved tensors and intermediates count); a
    storage counts from its creation until it is freed (a finalizer on its
    Python object, which PyTorch keeps for as long as the storage lives).
    """

    def __init__(self):
        super().__init__()
        self.live, self.now, self.peak = {}, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if id(storage) not in self.live:
                    self.live[id(storage)] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._free, id(storage))
        return out

    def _free(self, key):
        self.now -= self.live.pop(key)


def memory(C, N, iters):
    from funclinop.demo import sense_operator

    maps, mask, x_true = data(C, N)
    y = sense_operator(maps, mask)(x_true)

    def loss(maps, solver):
        A = sense_operator(maps, mask)
        S = A.N + LAM * fl.Identity(fl.Dim("NxNy"))
        return (solver(S, A.H(y)) - x_true).abs().square().sum()

    solvers = {
        "unrolled": lambda S, b: fl.alg.cg(S, b, tol=None, max_iter=iters),
        "implicit": lambda S, b: fl.alg.solve(S, b, tol=None, max_iter=iters),
    }
    print(f"\n2. Peak tensor memory of torch.func.grad (w.r.t. the coil maps) through {iters} CG iterations, "
          f"SENSE {C}×{N}×{N} complex64")
    print(f"{'gradient':<10} {'peak (MiB)':>11} {'time (s)':>9}")
    peaks, grads = {}, {}
    for kind, solver in solvers.items():
        t = time.perf_counter()
        grads[kind] = torch.func.grad(loss)(maps, solver)
        t = time.perf_counter() - t
        with PeakTensorMemory() as tracker:
            torch.func.grad(loss)(maps, solver)
        peaks[kind] = tracker.peak / 2**20
        print(f"{kind:<10} {peaks[kind]:>11.1f} {t:>9.2f}")
    difference = float((grads["implicit"] - grads["unrolled"]).norm() / grads["unrolled"].norm())
    print(f"   implicit / unrolled memory: {peaks['implicit'] / peaks['unrolled']:.3f} (target <= 0.1); "
          f"the gradients differ by {difference:.1e} (relative)")


# ---- 3. polynomial preconditioners -----------------------------------------------------------


def preconditioning(C, N, tol, degrees):
    from funclinop.demo import cartesian_mask, coil_maps, phantom, sense_operator

    A = sense_operator(coil_maps(N, C), cartesian_mask(N, 3.0))
    S = A.N + 1e-3 * fl.Identity(fl.Dim("NxNy"))
    b = A.H(A(phantom(N)))
    t = time.perf_counter()
    lo, hi = fl.alg.eig_bounds(S, generator=torch.Generator().manual_seed(0), max_iter=30, tol=1e-3)
    t_bounds = time.perf_counter() - t
    print(f"\n3. Polynomial preconditioners: CG on (AᴴA + 1e-3 I) x = Aᴴy to ||r|| <= {tol:g} ||b||, "
          f"SENSE {C}×{N}×{N} (demo phantom and coil maps, R = 3), complex64")
    print(f"   eig_bounds (30 power iterations each): [{float(lo):.3g}, {float(hi):.3g}] in {t_bounds:.2f} s")
    print(f"{'preconditioner':<22} {'iterations':>10} {'A.N applications':>17} {'time (s)':>9} {'residual':>10}")
    rows = [("none", None)]
    for kind in ("chebyshev", "least_squares"):
        for d in degrees:
            rows.append((f"{kind} {d}", fl.alg.polynomial_preconditioner(S, d, kind=kind,
                                                                        bounds=(float(lo), float(hi) * 1.05))))
    for name, M in rows:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            x, info = fl.alg.solve(S, b, M=M, tol=tol, max_iter=2000, return_info=True)
            times.append(time.perf_counter() - t)
        residual = float((S(x) - b).norm() / b.norm())
        it = int(info.iterations)
        applications = it * (1 + (len(M.coeffs) - 1 if M is not None else 0))
        print(f"{name:<22} {it:>10} {applications:>17} {sorted(times)[1]:>9.3f} {residual:>10.2e}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--wall-time", action="store_true",
                   help="time section 1 by the wall clock (default with one thread: the thread's CPU time)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_line())
    clock = time.perf_counter_ns if args.wall_time or args.threads != 1 else time.thread_time_ns
    speed(8, 128, 30, 5 if args.quick else 40, clock)
    memory(8, 128, 100)
    preconditioning(8, 128, 1e-6, (2, 4) if args.quick else (2, 4, 8))


if __name__ == "__main__":
    main()
