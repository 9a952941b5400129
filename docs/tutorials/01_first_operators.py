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
# # First operators
#
# An operator in funclinop is an immutable object with named input and
# output dims. This tutorial builds a few, applies them, composes them, takes
# adjoints and normals, and checks that an adjoint is right.

# %%
import torch

import funclinop as fl

try:  # figures when matplotlib is installed
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

torch.manual_seed(0)

# %% [markdown]
# ## Build and apply
#
# `Dense` multiplies by a matrix over named dims, `Diagonal` multiplies
# elementwise, `FFT` is the orthonormal Fourier transform. Dims are plain
# strings; `fl.Dim("NxNy")` splits a compact name at capitals.

# %%
W = torch.randn(3, 5)
A = fl.Dense(W, weightshape=("M", "N"), ishape=("N",), oshape=("M",))  # (N,) -> (M,)
x = torch.randn(5)
print(A.ishape, "->", A.oshape)
print(A(x))
torch.testing.assert_close(A(x), W @ x)

print(fl.Dim("NxNy"))

# %% [markdown]
# A leading `"..."` carries batch dims through. `A(x)` checks the input's
# dims before any work and names the operator and the dim when they do not
# fit:

# %%
D = fl.Diagonal(torch.linspace(0, 1, 8), ioshape=("...", "N"))
print(D(torch.ones(2, 8)).shape)  # one leading batch dim, carried through

try:
    D(torch.ones(7))
except fl.ShapeError as e:
    print("ShapeError:", e)

# %% [markdown]
# ## Compose
#
# `B @ A` applies `A` first. Dims must agree by name and size where the
# operators meet. Here a window, then a Fourier transform: the spectrum of a
# windowed signal.

# %%
n = 64
t = torch.arange(n)
signal = torch.cos(2 * torch.pi * 6.3 * t / n) + 0.5 * torch.cos(2 * torch.pi * 15 * t / n)
window = fl.Diagonal(torch.hann_window(n, periodic=True), ioshape=("N",))
F = fl.FFT(1, grid_shapes=(("N",), ("K",)), centered=True)  # (N,) -> (K,)
S = F @ window
spectrum = S(signal)
print(S.ishape, "->", S.oshape, spectrum.dtype)

if plt is not None:
    k = torch.arange(n) - n // 2
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    ax[0].plot(t, signal, label="signal")
    ax[0].plot(t, window(signal), label="windowed")
    ax[0].set_xlabel("n")
    ax[0].legend()
    ax[1].stem(k, F(signal).abs(), linefmt="C0-", markerfmt=" ", basefmt=" ", label="no window")
    ax[1].plot(k, spectrum.abs(), "C1o-", ms=3, label="Hann window")
    ax[1].set_xlabel("k")
    ax[1].legend()
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## Adjoint and normal
#
# `A.H` is the adjoint (conjugate transpose) and `A.N` the normal `AᴴA`,
# both operators again. Where a closed form exists the normal folds: the
# FFT is unitary, so `(F @ window).N` is just a `Diagonal` holding the
# squared window.

# %%
print(torch.allclose(A.H(A(x)), A.N(x), atol=1e-5))
print(type(F.N).__name__)
print(type(S.N).__name__)
torch.testing.assert_close(S.N.weight, torch.hann_window(n, periodic=True) ** 2)

# %% [markdown]
# Operators also add, subtract and scale: `A + B`, `A - B`, `2.0 * A`.
# Printing one shows its structure.

# %%
R = 2.0 * window - window.N
print(R)
print(R(signal)[:4])

# %% [markdown]
# ## Operators are values
#
# Operators are immutable pytrees: tensors are leaves, names and shapes are
# static. Nothing is cached on them, `A.H.H == A` (structural equality), and
# an update builds a new operator.

# %%
import dataclasses

print(A.H.H == A)
A2 = dataclasses.replace(A, weight=2 * A.weight)
torch.testing.assert_close(A2(x), 2 * A(x))

try:
    A.weight = torch.zeros(3, 5)
except dataclasses.FrozenInstanceError as e:
    print("FrozenInstanceError:", e)

# %% [markdown]
# ## Check an adjoint
#
# `fl.testing.check_adjoint` runs the dot test `<A x, y> = <x, Aᴴ y>` on
# random vectors and returns the relative error (it raises `AssertionError`
# past the tolerance for the dtype). Without an input it draws one from the
# sizes the operator fixes.

# %%
from funclinop.testing import check_adjoint, check_normal

print(check_adjoint(A))
print(check_adjoint(S, signal.to(torch.complex64)))
print(check_normal(S, signal.to(torch.complex64)))
