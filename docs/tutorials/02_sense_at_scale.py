# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Cartesian SENSE at scale
#
# SENSE is the forward model of parallel MRI: the image is weighted by each
# receive coil's sensitivity, Fourier transformed, and sampled on part of
# the k-space grid. This tutorial builds it from funclinop operators,
# reconstructs an image with conjugate gradients, then splits the operator
# over coils to bound memory and to place tiles on devices. Sizes are small
# so that it runs in seconds on a laptop CPU.

# %%
import torch

import funclinop as fl
from funclinop.demo import cartesian_mask, coil_maps, phantom

try:  # figures when matplotlib is installed
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

torch.manual_seed(0)
n, coils = 96, 8

# %% [markdown]
# ## Data
#
# A Shepp-Logan phantom, smooth synthetic coil maps normalised to
# `Σ|s|² = 1`, and a Cartesian mask: every third phase-encode line plus a
# fully sampled centre.

# %%
image = phantom(n)                 # (Nx, Ny) complex64
maps = coil_maps(n, coils)         # (C, Nx, Ny) complex64
mask = cartesian_mask(n, 3.0)      # (Kx, Ky) bool
print(image.shape, maps.shape, f"{mask.float().mean():.0%} of k-space sampled")

if plt is not None:
    fig, ax = plt.subplots(1, 4, figsize=(12, 3))
    ax[0].imshow(image.abs(), cmap="gray")
    ax[0].set_title("phantom")
    for i in range(2):
        ax[1 + i].imshow(maps[2 * i].abs(), cmap="viridis")
        ax[1 + i].set_title(f"|coil map {2 * i}|")
    ax[3].imshow(mask, cmap="gray")
    ax[3].set_title("sampling mask")
    for a in ax:
        a.axis("off")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## The operator
#
# Three factors, each over named dims:
#
# - `S`, the coil maps: a `Dense` whose weight has dims `(C, Nx, Ny)`,
#   taking an image `(Nx, Ny)` to coil images `(C, Nx, Ny)` (an elementwise
#   product, broadcast over coils);
# - `F`, a centered 2-D FFT over `(Nx, Ny) -> (Kx, Ky)`, carrying `C`;
# - `P`, the sampling of the masked k-space points, `(C, Kx, Ky) -> (C, M)`.

# %%
S = fl.Dense(maps, fl.Dim("CNxNy"), fl.Dim("NxNy"), fl.Dim("CNxNy"))
F = fl.FFT(2, batch_shape=("C",), centered=True)
P = fl.Sampling.from_mask(mask, input_shape=("Kx", "Ky"), batch_shape=("C",))
A = P @ F @ S
print(A.ishape, "->", A.oshape, {d: fl.size(A, d) for d in ("C", "M")})

from funclinop.testing import check_adjoint

print("adjoint relative error", check_adjoint(A))

# %% [markdown]
# ## Reconstruction
#
# Measured data `y = A x + noise`, 2% noise. The zero-filled image `Aᴴ y` shows the
# aliasing of undersampling; CG on the normal equations `(AᴴA + λ I) x = Aᴴ y`
# removes it. `A.N` is folded: the FFT's normal is the identity, so it is
# `Sᴴ Fᴴ (PᴴP) F S` with `PᴴP` a diagonal of sample counts.

# %%
y = A(image)
y = y + 0.02 * y.abs().square().mean().sqrt() * torch.randn_like(y)  # 2% of the RMS signal
zero_filled = A.H(y)
recon = fl.alg.solve(A.N, A.H(y), damp=0.03, tol=1e-5, max_iter=50)


def nrmse(x):
    return float((x - image).norm() / image.norm())


print(f"zero-filled NRMSE {nrmse(zero_filled):.3f}, CG NRMSE {nrmse(recon):.3f}")
assert nrmse(recon) < nrmse(zero_filled)

if plt is not None:
    fig, ax = plt.subplots(1, 3, figsize=(9, 3))
    for a, img, title in zip(ax, (image, zero_filled, recon), ("truth", "zero-filled Aᴴy", "CG")):
        a.imshow(img.abs(), cmap="gray")
        a.set_title(title)
        a.axis("off")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## Splitting into tiles
#
# `fl.split_linop` cuts the operator along named dims into a nested tuple
# of tiles, with the slices of the input and output each one covers. The
# coil dim splits (each coil is its own block); the image and k-space grids
# do not (the FFT mixes them), and asking for them is a `ValueError` naming
# the operator that refuses, raised before anything is built.

# %%
tiles, in_slices, out_slices = fl.split_linop(A, {"C": 2})
print(len(tiles), "tiles; the second covers output", out_slices[1])
for tile, i, o in zip(tiles, in_slices, out_slices):
    torch.testing.assert_close(tile(image[i]), A(image)[o])

try:
    fl.split_linop(A, {"Nx": 32})
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## Batched operators
#
# `fl.create_batched_linop` splits by a `BatchSpec` and reassembles the
# tiles into one operator equal to `A` (forward, adjoint and normal). With
# `stack=True` (the default) equal tiles are stacked and run as one
# `torch.func.vmap`: the same kernels as before, batched. With `stack=False`
# they run one after another, so only one tile's intermediates are alive at
# a time: that is what bounds memory.

# %%
stacked = fl.create_batched_linop(A, fl.BatchSpec({"C": 2}))
looped = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}, stack=False))
print(type(stacked).__name__, type(looped).__name__)
for B in (stacked, looped):
    torch.testing.assert_close(B(image), A(image))
    torch.testing.assert_close(B.H(y), A.H(y))
    torch.testing.assert_close(B.N(image), A.N(image), rtol=1e-4, atol=1e-5)

# %% [markdown]
# ## Memory
#
# The largest intermediate of `A.N` is the stack of coil images (and their
# k-spaces), `C × Nx × Ny` complex numbers; looped tiles of one coil hold
# one `Nx × Ny` image at a time. At this size that is small either way; at
# 32 coils and 384×384 the unbatched normal holds 36 MiB per
# coil-stacked intermediate, and `benchmarks/bench_batching.py` measures the
# peak memory of the looped normal at about 2% of the unbatched one.

# %%
def mib(*shape, dtype=torch.complex64):
    return torch.empty(0, dtype=dtype).element_size() * torch.Size(shape).numel() / 2**20


print(f"coil images here: {mib(coils, n, n):.2f} MiB unbatched, {mib(1, n, n):.3f} MiB per looped tile")
print(f"32 coils, 384x384: {mib(32, 384, 384):.1f} MiB unbatched, {mib(1, 384, 384):.2f} MiB per tile")

# %% [markdown]
# ## Devices
#
# A `BatchSpec` can also place tiles on devices: `device_matrix` lists one
# device per tile (repeated over the tile grid) and `base_device` is where
# the data lives. Tiles off the base device are wrapped as
# `ToDevice ∘ tile ∘ ToDevice`, so the batched operator still takes and
# returns data on the base device. This machine has no GPU, so the device
# list is just the CPU here; on a machine with GPUs the same line puts the
# coils on them:

# %%
devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
spec = fl.BatchSpec({"C": 2}, device_matrix=devices, base_device="cpu")
B = fl.create_batched_linop(A, spec)
torch.testing.assert_close(B(image), A(image))
print("tiles on", devices)

# %% [markdown]
# What changes on a GPU:
#
# - Move the whole operator with `fl.to(A, "cuda")` (a tree map over the
#   leaves that keeps shared storage shared) and the data with
#   `image.to("cuda")`; `A(x)` raises `fl.DeviceError` naming both devices
#   if they differ.
# - With `device_matrix=["cuda:0", "cuda:1"]` and `base_device="cpu"` the
#   data stays on the CPU and each tile's input moves to its GPU and back.
# - Stacked tiles are one batched kernel per op, which is what a GPU wants;
#   looped tiles cost one set of kernel launches per tile, so loop only
#   when memory requires it (`benchmarks/gpu_check.py` measures both).
