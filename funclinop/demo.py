"""SENSE MRI reconstruction on synthetic data: ``python -m funclinop.demo``.

Builds a phantom and coil maps in code, undersamples k-space on a Cartesian
grid, checks the SENSE operator's adjoint, batches the operator over coils
(tiles on the GPU, data on the CPU, when CUDA is there), reconstructs with
CG, prints a summary and saves a figure when matplotlib is installed.

``--trajectory radial`` samples golden-angle radial spokes instead: a NUFFT
SENSE operator, Pipe–Menon density compensation, and CG on the Toeplitz
form of the density-weighted normal (two FFTs on the doubled grid per
coil and iteration, no interpolation).
"""

import argparse
import math
import os
import resource
import sys
import time

import torch

import funclinop as fl
from funclinop.testing import check_adjoint

# Modified Shepp-Logan: (intensity, a, b, x0, y0, angle in degrees)
_ELLIPSES = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0),
    (-0.8, 0.6624, 0.874, 0.0, -0.0184, 0),
    (-0.2, 0.11, 0.31, 0.22, 0.0, -18),
    (-0.2, 0.16, 0.41, -0.22, 0.0, 18),
    (0.1, 0.21, 0.25, 0.0, 0.35, 0),
    (0.1, 0.046, 0.046, 0.0, 0.1, 0),
    (0.1, 0.046, 0.046, 0.0, -0.1, 0),
    (0.1, 0.046, 0.023, -0.08, -0.605, 0),
    (0.1, 0.023, 0.023, 0.0, -0.606, 0),
    (0.1, 0.023, 0.046, 0.06, -0.605, 0),
)


def _grid(n):
    t = torch.linspace(-1, 1, n, dtype=torch.float64)
    return torch.meshgrid(t, t, indexing="ij")


def phantom(n):
    """An n×n modified Shepp-Logan phantom (complex64)."""
    yy, xx = _grid(n)
    img = torch.zeros(n, n, dtype=torch.float64)
    for rho, a, b, x0, y0, deg in _ELLIPSES:
        th = math.radians(deg)
        xr = (xx - x0) * math.cos(th) + (yy - y0) * math.sin(th)
        yr = -(xx - x0) * math.sin(th) + (yy - y0) * math.cos(th)
        img += rho * ((xr / a) ** 2 + (yr / b) ** 2 <= 1)
    return img.to(torch.complex64)


def coil_maps(n, coils):
    """Smooth complex sensitivities of coils around the object, normalised to Σ|s|² = 1."""
    yy, xx = _grid(n)
    maps = []
    for c in range(coils):
        phi = 2 * math.pi * c / coils
        cx, cy = 1.5 * math.cos(phi), 1.5 * math.sin(phi)
        mag = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 2.0)
        phase = torch.exp(1j * (phi + 0.5 * (xx * math.cos(phi) + yy * math.sin(phi))))
        maps.append(mag * phase)
    maps = torch.stack(maps)
    return (maps / maps.abs().square().sum(0).sqrt()).to(torch.complex64)


def cartesian_mask(n, accel, center=0.08, seed=0):
    """Every ``accel``-th phase-encode line (randomly offset) plus a fully sampled centre."""
    g = torch.Generator().manual_seed(seed)
    step = max(1, int(round(accel)))
    offset = int(torch.randint(step, (1,), generator=g))
    lines = torch.zeros(n, dtype=torch.bool)
    lines[offset::step] = True
    half = max(1, int(center * n) // 2)
    lines[n // 2 - half: n // 2 + half] = True
    return lines[None, :].expand(n, n).clone()


def sense_operator(maps, mask):
    """Sampling ∘ FFT ∘ coil maps: image (Nx, Ny) -> samples (C, M)."""
    S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
    F = fl.FFT(2, batch_shape=("C",), centered=True)
    P = fl.Sampling.from_mask(mask, input_shape=("Kx", "Ky"), batch_shape=("C",))
    return P @ F @ S


def radial_sense(maps, spokes, readout):
    """NUFFT ∘ coil maps on golden-angle radial spokes: image (Nx, Ny) -> samples (C, K, K1)."""
    n = maps.shape[-1]
    locs = fl.nufft.radial(spokes, readout, grid_size=(n, n))
    S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
    E = fl.NUFFT(locs, (n, n), ishape=("C", "Nx", "Ny"))
    return E @ S, E, S, locs


def disc_limited(x):
    """``x`` without the k-space corners outside the disc ``|k| < N/2``: radial
    spokes (locations in ``[-N/2, N/2)``) never sample them, so this is the
    best a radial reconstruction can return."""
    n = x.shape[-1]
    k = torch.arange(n) - n // 2
    outside = (k[:, None] ** 2 + k[None, :] ** 2) >= (n / 2) ** 2
    X = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"))
    X[outside] = 0
    return torch.fft.ifft2(torch.fft.ifftshift(X), norm="ortho")


def nrmse(x, ref):
    return float(torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref))


def _progress(total, enabled):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if not enabled or tqdm is None:
        return None
    return tqdm(total=total, desc="CG", unit="it", leave=False)


def _cg(normal, b, args):
    """CG on ``(normal + λI) x = b`` with the demo's options: ``(x, info, seconds)``."""
    bar = _progress(args.iters, not args.no_progress)

    def system(x):
        if bar is not None:
            bar.update(1)
        return normal(x) + args.lam * x

    t0 = time.perf_counter()
    x, info = fl.alg.cg(system, b, max_iter=args.iters, tol=1e-6, return_info=True)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return x, info, seconds


def _peak_memory(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "GPU"
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**10 if sys.platform != "darwin" else kb / 2**20, "process RSS"


def _positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _count(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _parser():
    p = argparse.ArgumentParser(prog="python -m funclinop.demo", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", type=_positive(int), default=128, help="image size N (N×N)")
    p.add_argument("--coils", type=_positive(int), default=8, help="receive coils")
    p.add_argument("--accel", type=_positive(float), default=3.0, help="undersampling factor")
    p.add_argument("--batch", type=_positive(int), default=2, help="coils per tile")
    p.add_argument("--iters", type=_positive(int), default=40, help="CG iterations")
    p.add_argument("--lam", type=float, default=None,
                   help="Tikhonov weight λ in (AᴴA + λI); None: 1e-3, and 0.05 for radial data "
                        "(the density weights raise the noise at the edge of k-space)")
    p.add_argument("--noise", type=_count_float, default=0.02, help="noise level relative to the RMS signal")
    p.add_argument("--device", default="auto", help="where the tiles run: auto (cuda when there is one), cpu, cuda[:k]")
    p.add_argument("--out", default="funclinop_demo.png", help="figure path ('' for none; needs matplotlib)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and the Cartesian mask")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (tqdm)")
    p.add_argument("--trajectory", choices=("cartesian", "radial"), default="cartesian",
                   help="Cartesian lines, or golden-angle radial spokes (NUFFT, Toeplitz normal)")
    p.add_argument("--spokes", type=_count, default=0,
                   help="radial spokes; 0: π/2·N / accel (Nyquist's count divided by accel)")
    p.add_argument("--nprocs", type=_count, default=0,
                   help="also reconstruct with the coils split over this many processes (gloo, "
                        "this machine); 0: none")
    return p


def _count_float(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _check(p, args):
    """One-line errors for what the parser cannot see, before any work."""
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = fl.device.as_device(args.device)
    except TypeError:
        p.error(f"argument --device: not a device: {args.device!r} (auto, cpu, cuda or cuda:k)")
    if device.type not in ("cpu", "cuda"):
        p.error(f"argument --device: {device} is not supported here (auto, cpu, cuda or cuda:k)")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("argument --device: CUDA is not available on this machine (use cpu)")
    if args.out:
        folder = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            p.error(f"argument --out: cannot write a figure into {folder}")
    if args.lam is None:
        args.lam = 0.05 if args.trajectory == "radial" else 1e-3
    return device


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    tile_device = _check(p, args)
    t_start = time.perf_counter()

    n, C = args.size, args.coils
    if args.trajectory == "radial":
        return _radial(args, t_start)
    x_true = phantom(n)
    maps = coil_maps(n, C)
    mask = cartesian_mask(n, args.accel, seed=args.seed)
    A = sense_operator(maps, mask)
    g = torch.Generator().manual_seed(args.seed)
    y = A(x_true)
    noise = torch.randn(y.shape, generator=g, dtype=torch.complex64)
    y = y + args.noise * y.abs().square().mean().sqrt() * noise
    print(f"SENSE: {n}×{n} image, {C} coils, {mask[0].sum().item()}/{n} lines "
          f"(R = {n / mask[0].sum().item():.1f}), {y.shape[-1]} samples per coil")
    print(f"  {A.ishape} -> {A.oshape}")

    err = check_adjoint(A, torch.randn(n, n, dtype=torch.complex64, generator=g), rtol=1e-4)
    print(f"adjoint check   <Ax, y> vs <x, Aᴴy>: relative error {err:.1e}")

    spec = fl.BatchSpec({"C": args.batch}, device_matrix=[tile_device], base_device="cpu")
    B = fl.create_batched_linop(A, spec)
    diff = nrmse(B(x_true), A(x_true))
    kind = type(B).__name__
    print(f"batched over coils ({args.batch} per tile, tiles on {tile_device}, data on cpu, {kind}): "
          f"differs from unbatched by {diff:.1e}")

    x_cg, info, t_cg = _cg(B.N, B.H(y), args)

    if args.nprocs:
        _distributed(args, maps, mask, y, x_cg)

    zero_filled = A.H(y)
    scale = lambda x: x * (torch.vdot(x.flatten(), x_true.flatten()) / torch.vdot(x.flatten(), x.flatten()))
    mem, where = _peak_memory(tile_device)
    print(f"CG: {int(info.iterations)} iterations in {t_cg:.2f} s, residual {float(info.residual_norm):.2e}")
    print(f"NRMSE vs ground truth: zero-filled {nrmse(scale(zero_filled), x_true):.3f}, "
          f"CG {nrmse(x_cg, x_true):.3f}")
    print(f"total time {time.perf_counter() - t_start:.1f} s, peak memory {mem:.0f} MiB ({where})")

    _figure(args.out, x_true, scale(zero_filled), x_cg,
            ("phantom", "zero-filled", f"SENSE CG ({int(info.iterations)} it)"))
    return 0


def _radial(args, t_start):
    n, C = args.size, args.coils
    spokes = args.spokes or max(1, round(math.pi / 2 * n / args.accel))
    x_true, maps = phantom(n), coil_maps(n, C)
    t0 = time.perf_counter()
    A, E, S, locs = radial_sense(maps, spokes, n)
    t_build = time.perf_counter() - t0
    g = torch.Generator().manual_seed(args.seed)
    y = A(x_true)
    y = y + args.noise * y.abs().square().mean().sqrt() * torch.randn(y.shape, generator=g, dtype=y.dtype)
    print(f"radial SENSE: {n}×{n} image, {C} coils, {spokes} golden-angle spokes × {n} samples "
          f"(R = {math.pi / 2 * n / spokes:.1f} against Nyquist's π/2·N spokes); NUFFT built in {t_build:.2f} s")
    print(f"  {A.ishape} -> {A.oshape}")
    err = check_adjoint(A, torch.randn(n, n, dtype=torch.complex64, generator=g), rtol=1e-4)
    print(f"adjoint check   <Ax, y> vs <x, Aᴴy>: relative error {err:.1e}")

    t0 = time.perf_counter()
    w = fl.nufft.density_compensation(locs, (n, n))
    T = fl.nufft.toeplitz_normal(E, locs, w)  # Eᴴ W E on (C, Nx, Ny), as two FFTs on a 2N grid
    normal = S.H @ T @ S
    t_setup = time.perf_counter() - t0
    x = torch.randn(n, n, dtype=torch.complex64, generator=g)
    exact = S.H(E.H(w * E(S(x))))
    print(f"density compensation and Toeplitz kernel in {t_setup:.2f} s; Toeplitz normal vs "
          f"Aᴴ W A: relative difference {nrmse(normal(x), exact):.1e} (the NUFFT's own accuracy at "
          f"its defaults; the Toeplitz kernel is accurate to 1e-6)")

    b = S.H(E.H(w * y))
    x_cg, info, t_cg = _cg(normal, b, args)
    scale = lambda x: x * (torch.vdot(x.flatten(), x_true.flatten()) / torch.vdot(x.flatten(), x.flatten()))
    print(f"CG on the Toeplitz normal: {int(info.iterations)} iterations in {t_cg:.2f} s, "
          f"residual {float(info.residual_norm):.2e}")
    ref = disc_limited(x_true)
    print(f"NRMSE vs the phantom's sampled disc of k-space (the phantom itself: the corners add "
          f"{nrmse(ref, x_true):.3f}): density-compensated adjoint {nrmse(scale(b), ref):.3f}, "
          f"CG {nrmse(x_cg, ref):.3f}")
    mem, where = _peak_memory(torch.device("cpu"))
    print(f"total time {time.perf_counter() - t_start:.1f} s, peak memory {mem:.0f} MiB ({where})")
    _figure(args.out, x_true, scale(b), x_cg, ("phantom", "gridding (Aᴴ W y)", f"SENSE CG ({int(info.iterations)} it)"))
    return 0


def _figure(path, *images_and_titles):
    if not path:
        return
    *images, titles = images_and_titles
    try:
        from matplotlib.figure import Figure  # no pyplot: the backend (a notebook's too) is left alone
    except ImportError:
        print("matplotlib is not installed: no figure")
        return
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, len(images))
    for ax, img, title in zip(axes, images, titles):
        ax.imshow(img.abs().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"figure saved to {path}")


def _distributed_cg(rank, maps, mask, y, args):
    """One rank's reconstruction: its coils' tiles, one all_reduce of the image per A.N."""
    D = fl.distribute(sense_operator(maps, mask), {"C": args.batch})
    system = lambda x: D.N(x) + args.lam * x  # noqa: E731
    t0 = time.perf_counter()
    x = fl.alg.cg(system, D.H(y), max_iter=args.iters, tol=1e-6)
    return x, time.perf_counter() - t0, [b - a for a, b in D.layout[rank]]


def _distributed(args, maps, mask, y, x_cg):
    results = fl.distributed.run(_distributed_cg, args.nprocs, maps, mask, y, args)
    x, t, _ = results[0]
    coils = ", ".join(f"rank {r}: {sum(c)} coils" for r, (_, _, c) in enumerate(results))
    print(f"CG over {args.nprocs} processes ({coils}) in {t:.2f} s: "
          f"differs from one process by {nrmse(x, x_cg):.1e}")


if __name__ == "__main__":
    sys.exit(main())
