"""GPU check for batching and device placement (one prepared run on a CUDA machine).

1. SENSE 32×256×256 complex64 batched over coils with its tiles on the GPU
   and the data on the CPU (and the reverse), against the CPU result:
   forward, adjoint and normal.
2. Device names: "cuda" and "cuda:0" are one device; ``to`` keeps sharing.
3. Timing on the GPU: the unbatched operator vs batched over coils (C=1,
   C=4; stacked with vmap and looped), hand-written torch and torchlinops.
4. Peak CUDA memory of the normal: unbatched vs batched over coils.

Run ``python benchmarks/gpu_check.py`` on a machine with CUDA
(``--device cpu`` does a dry run of the same code without a GPU).
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, format_table, machine_line  # noqa: E402
from sense import Plain, data, funclinop_sense, tl, torchlinops_sense  # noqa: E402

import funclinop as fl  # noqa: E402


def rel(a, b):
    a, b = a.to("cpu"), b.to("cpu")
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def placement(A, x, dev):
    y, xa, xn = A(x), A.H(A(x)), A.N(x)
    print(f"\n1. placement: SENSE {tuple(A.linops[0].weight.shape)}, reference computed on cpu")
    rows = []
    for bs, stack in ((1, True), (4, True), (4, False)):
        B = fl.create_batched_linop(A, fl.BatchSpec({"C": bs}, device_matrix=[dev], base_device="cpu", stack=stack))
        yb = B(x)
        assert yb.device.type == "cpu", yb.device
        rows.append((f"tiles on {dev}, data on cpu, C={bs}, stack={stack}", rel(yb, y), rel(B.H(y), xa), rel(B.N(x), xn)))
    Ag, xg = fl.to(A, dev), x.to(dev)
    B = fl.create_batched_linop(Ag, fl.BatchSpec({"C": 8}, device_matrix=["cpu"], base_device=dev))
    yb = B(xg)
    assert yb.device.type == torch.device(dev).type
    rows.append((f"tiles on cpu, data on {dev}, C=8", rel(yb, y), rel(B.H(y.to(dev)), xa), rel(B.N(xg), xn)))
    for r in rows:
        print(f"  {r[0]:<48} rel. error forward {r[1]:.1e}  adjoint {r[2]:.1e}  normal {r[3]:.1e}")
        assert max(r[1:]) < 1e-4, r


def names_and_sharing(A, dev):
    from funclinop.device import as_device

    print("\n2. devices")
    if dev == "cuda":
        print(f"  as_device('cuda') == as_device('cuda:0'): {as_device('cuda') == as_device('cuda:0')}")
        T = fl.ToDevice("cuda", "cuda:0")
        print(f"  ToDevice('cuda', 'cuda:0'): {T.idevice} -> {T.odevice}")
    N = fl.to(A.N, dev)
    ptrs = {op.weight.untyped_storage().data_ptr() for op in N.linops if isinstance(op, fl.Dense)}
    print(f"  fl.to(A.N, {dev!r}): the Dense weights of A and Aᴴ share {len(ptrs)} storage(s)")


def timing(A, x, dev, rounds):
    maps = A.linops[0].weight
    Ag, xg = fl.to(A, dev), x.to(dev)
    mask_g = torch.zeros(x.shape, dtype=torch.bool)
    mask_g.view(-1)[A.linops[-1].flat_idx.cpu()] = True
    plain = Plain(maps.to(dev), mask_g.to(dev))
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    cands = {"torch hand-written": lambda: (plain.forward(xg), sync()), "funclinop unbatched": lambda: (Ag(xg), sync())}
    for bs in (1, 4):
        for stack in (True, False):
            B = fl.create_batched_linop(Ag, fl.BatchSpec({"C": bs}, stack=stack))
            torch.testing.assert_close(B(xg), Ag(xg), rtol=1e-4, atol=1e-3)
            name = f"funclinop C={bs} {'stacked' if stack else 'looped'}"
            cands[name] = (lambda B: lambda: (B(xg), sync()))(B)
    extra = ()
    if tl is not None:
        R = torchlinops_sense(maps.to(dev), mask_g.to(dev))
        cands["torchlinops unbatched"] = lambda: (R(xg), sync())
        for bs in (1, 4):
            Rb = tl.create_batched_linop(R, tl.BatchSpec({"C": bs}, device_matrix=[torch.device(dev)],
                                                          base_device=torch.device(dev)))
            torch.testing.assert_close(Rb(xg), Ag(xg), rtol=1e-4, atol=1e-3)
            cands[f"torchlinops C={bs}"] = (lambda Rb: lambda: (Rb(xg), sync()))(Rb)
        extra = ("torchlinops unbatched",)
    t = compare(cands, rounds=rounds)
    print(format_table(f"\n3. SENSE forward {tuple(maps.shape)} complex64 on {dev}", t, "funclinop unbatched", extra))
    return t


def memory(A, x, dev):
    if dev != "cuda":
        return
    print("\n4. peak CUDA memory of one normal application (above what is allocated before it)")
    Ag, xg = fl.to(A, dev), x.to(dev)
    variants = {"unbatched": Ag.N, "C=1 looped": fl.create_batched_linop(Ag.N, fl.BatchSpec({"C": 1}, stack=False)),
                "C=1 stacked": fl.create_batched_linop(Ag.N, fl.BatchSpec({"C": 1}))}
    peaks = {}
    for name, op in variants.items():
        op(xg)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        op(xg)
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated() - base
    for name, p in peaks.items():
        print(f"  {name:<12} {p / 2**20:8.1f} MiB  ({p / peaks['unbatched']:.3f}× unbatched)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--coils", type=int, default=32)
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args(argv)
    dev = args.device
    print(machine_line())
    if dev == "cuda":
        print(f"GPU: {torch.cuda.get_device_name()}")
    maps, mask, x = data(args.coils, args.size)
    A = funclinop_sense(maps, mask)
    placement(A, x, dev)
    names_and_sharing(A, dev)
    t = timing(A, x, dev, args.rounds)
    memory(A, x, dev)
    print("\nSummary (paired median ratios)")
    for name in t.names:
        if name.startswith("funclinop C"):
            print(f"  {name} / funclinop unbatched: {t.ratio(name, 'funclinop unbatched'):.2f}")
        if name.startswith("torchlinops C"):
            print(f"  {name} / torchlinops unbatched: {t.ratio(name, 'torchlinops unbatched'):.2f}")
    print(f"  funclinop unbatched / torch hand-written: {t.ratio('funclinop unbatched', 'torch hand-written'):.2f}")


if __name__ == "__main__":
    main()
