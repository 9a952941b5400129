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
# # Learning through an operator
#
# Operators are pytrees whose leaves are tensors, and applying one is a pure
# function of those leaves. So `torch.func` transforms see through them:
# `grad` with respect to an operator returns an operator of the same type
# holding the gradients, `vmap` maps over a stack of operators, and
# `torch.compile` traces `A(x)` without graph breaks.

# %%
import dataclasses

import torch
import torch.utils._pytree as pytree

import funclinop as fl

try:  # figures when matplotlib is installed
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

torch.manual_seed(0)

# %% [markdown]
# ## Fit a Diagonal
#
# Unknown gains `w` act elementwise on signals, `y = w ⊙ x + noise`. The
# loss is a function of the operator; `fl.grad(loss)(D)` is a `Diagonal`
# whose weight is `∂L/∂w`, and one gradient step is a new operator.

# %%
n, batch = 32, 16
w_true = 1 + torch.sin(torch.linspace(0, 3, n))
xs = torch.randn(batch, n)
ys = w_true * xs + 0.01 * torch.randn(batch, n)


def loss(D):
    return (D(xs) - ys).square().sum() / batch


D = fl.Diagonal(torch.zeros(n), ioshape=("...", "N"))
g = fl.grad(loss)(D)
print(type(g).__name__, g.weight.shape)

history = []
for step in range(50):
    g = fl.grad(loss)(D)
    D = dataclasses.replace(D, weight=D.weight - 0.25 * g.weight)
    history.append(float(loss(D)))
print(f"loss {history[0]:.4f} -> {history[-1]:.6f}, max |w - w_true| = {(D.weight - w_true).abs().max():.4f}")
assert history[-1] < 0.01 * history[0]

# %% [markdown]
# ## Fit coil maps through a SENSE operator
#
# The same works for a whole operator tree. Here the coil maps of a SENSE
# operator `P @ F @ S` are fitted to k-space data of a known image. The
# operator holds integer leaves too (the sampling indices), which cannot
# have gradients: `fl.grad` differentiates the floating-point leaves only and
# returns `None` for the others. The gradient is a `Chain` like `A`; its
# first factor holds `∂L/∂maps`.

# %%
from funclinop.demo import cartesian_mask, coil_maps, phantom, sense_operator

n, coils = 32, 4
image = phantom(n)
mask = cartesian_mask(n, 2.0)
y = sense_operator(coil_maps(n, coils), mask)(image)

A = sense_operator(torch.zeros(coils, n, n, dtype=torch.complex64), mask)
print([type(op).__name__ for op in A.linops])


def data_loss(A):
    return (A(image) - y).abs().square().sum()


G = fl.grad(data_loss)(A)
no_grad = sum(leaf is None for leaf in pytree.tree_leaves(G, is_leaf=lambda t: t is None))
print(type(G).__name__, G.linops[0].weight.shape, f"{no_grad} integer leaves without a gradient")

maps_history = []
for step in range(30):
    G = fl.grad(data_loss)(A)
    S = A.linops[0]
    A = dataclasses.replace(A, linops=(dataclasses.replace(S, weight=S.weight - 0.5 * G.linops[0].weight), *A.linops[1:]))
    maps_history.append(float(data_loss(A)))
print(f"data loss {maps_history[0]:.3g} -> {maps_history[-1]:.3g}")
assert maps_history[-1] < 0.1 * maps_history[0]

if plt is not None:
    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    ax[0].semilogy(history)
    ax[0].set_title("fit a Diagonal")
    ax[1].semilogy(maps_history)
    ax[1].set_title("fit coil maps")
    for a in ax:
        a.set_xlabel("gradient step")
        a.set_ylabel("loss")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# The step above is plain gradient descent with a fixed step; the maps are
# only fitted where the image is nonzero and where k-space is sampled, so
# they are not the true maps, but they reproduce the data. In practice one
# adds a smoothness penalty, or hands the leaves to a `torch.optim`
# optimiser (flatten with `pytree.tree_flatten`, step, unflatten).

# %% [markdown]
# ## vmap over operators
#
# A stack of operators of the same structure is one operator whose leaves
# have a leading axis: build it with a tree map of `torch.stack`, and
# `torch.func.vmap` maps over it (and over inputs) as over tensors.

# %%
Ds = [fl.Diagonal(torch.randn(8), ioshape=("N",)) for _ in range(5)]
stacked = pytree.tree_map(lambda *leaves: torch.stack(leaves), *Ds)
print(type(stacked).__name__, stacked.weight.shape)

x = torch.randn(8)
ys_vmap = torch.func.vmap(lambda D, x: D(x), in_dims=(0, None))(stacked, x)
torch.testing.assert_close(ys_vmap, torch.stack([D(x) for D in Ds]))

# per-operator gradients in one call: vmap of grad
grads = torch.func.vmap(fl.grad(lambda D, x: D(x).square().sum()), in_dims=(0, None))(stacked, x)
torch.testing.assert_close(grads.weight, 2 * stacked.weight * x.square())

# %% [markdown]
# ## torch.compile
#
# `A(x)`, `A.H(y)` and `A.N(x)` compile with `fullgraph=True`: the operator
# is an input of the compiled function (its leaves are graph inputs, its
# static fields are guarded), so the same compiled function serves every
# operator of the same structure. `backend="aot_eager"` traces forward and
# backward graphs without generating code, which keeps this tutorial fast;
# the default backend (Inductor) generates kernels and takes longer to
# compile (and gains nothing on complex FFT pipelines on a CPU, see the
# benchmarks).

# %%
apply = torch.compile(lambda A, x: A.N(x), fullgraph=True, backend="aot_eager")
torch.testing.assert_close(apply(A, image), A.N(image))

A_true = sense_operator(coil_maps(n, coils), mask)
torch.testing.assert_close(apply(A_true, image), A_true.N(image))  # same structure: no recompile

compiled_loss = torch.compile(loss, fullgraph=True, backend="aot_eager")
torch.testing.assert_close(compiled_loss(D), loss(D))
print("compiled:", float(compiled_loss(D)))
