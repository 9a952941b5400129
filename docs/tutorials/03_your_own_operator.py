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
# # Your own operator
#
# A new operator is a small subclass of `fl.Linop`: its fields, its named
# input and output dims, `apply`, and (to be split and batched) a tile rule,
# the sizes it fixes and how its tiles reassemble. Registering a factory for
# it then lets funclinop's hypothesis strategies draw it, alone and inside
# random operator trees, so the same property tests that check the built-in
# operators check yours.
#
# The example is a bank of delay lines: channel `c` of a signal is delayed
# by `shift` samples (circularly, along time) and scaled by its own gain,
#
# $$y_{c,n} = g_c\, x_{c,\,(n - s) \bmod N}.$$
#
# It acts on each channel separately (it splits over channels) but mixes
# time samples (it does not split over time).

# %%
import dataclasses

import torch

import funclinop as fl
from funclinop import static


class Delay(fl.Linop):
    """y[c, n] = gain[c] * x[c, n - shift], circular along the last dim."""

    gain: torch.Tensor                                  # a leaf: one gain per channel
    shift: int = static(default=1)                      # static: part of the treedef
    ioshape: tuple = static(default=("...", "C", "N"))  # channels, then time

    @property
    def ishape(self):
        return self.ioshape

    @property
    def oshape(self):
        return self.ioshape

    def apply(self, x):
        return torch.roll(x, self.shift, dims=-1) * self.gain[:, None]

    def apply_adjoint(self, y):
        return torch.roll(y * self.gain.conj()[:, None], -self.shift, dims=-1)

    def normal(self):
        # a circular shift is unitary: AᴴA only scales each channel by |g|²
        weight = (self.gain * self.gain.conj()).real[:, None]
        return fl.Diagonal(weight, self.ioshape, broadcast_dims=(self.ioshape[-1],))

    def size(self, dim):
        return self.gain.shape[0] if dim == self.ioshape[-2] else None

    def split_kind(self, dim):
        if dim == self.ioshape[-1]:
            return None  # the shift mixes time samples: tiles along time cannot rebuild A
        return super().split_kind(dim)  # channels and batch dims: block-diagonal

    def tile(self, slices):
        channel, time = self.ioshape[-2], self.ioshape[-1]
        if slices.get(time, slice(None)) != slice(None):
            raise ValueError(f"{self._name()}: cannot split over dim {time!r}, the shift mixes it")
        return dataclasses.replace(self, gain=self.gain[slices.get(channel, slice(None))])


# %% [markdown]
# Everything else comes from the base class: `A(x)` checks the input's dims
# and sizes (the gain fixes the number of channels), `A.H` is the generic
# adjoint wrapper calling `apply_adjoint`, and `A.N` is the closed form above.

# %%
torch.manual_seed(0)
A = Delay(torch.tensor([1.0, -2.0, 0.5]), shift=2)
x = torch.arange(12.0).reshape(3, 4)
print(A(x))
print(A.N(x) - A.H(A(x)))  # the closed-form normal agrees with AᴴA

try:
    A(torch.zeros(2, 4))  # two channels, but the gain has three
except fl.ShapeError as e:
    print("ShapeError:", e)

# %% [markdown]
# ## Checks
#
# `fl.testing.check_adjoint` runs the dot test, `check_normal` compares
# `A.N(x)` with `A.H(A(x))`, and `check_pytree` checks that the operator
# flattens, unflattens, differentiates and vmaps as a pytree. Each returns
# the measured relative error and raises `AssertionError` past the tolerance.

# %%
from funclinop.testing import check_adjoint, check_normal, check_pytree

xc = torch.randn(5, 3, 4, dtype=torch.complex128)  # a leading batch dim rides along
Ac = Delay(torch.randn(3, dtype=torch.complex128), shift=1)
print(check_adjoint(Ac, xc), check_normal(Ac, xc))
check_pytree(Ac, xc)

# %% [markdown]
# ## Splitting
#
# With a tile rule and a split kind, the operator splits over channels and
# refuses time, before anything is built. (Splitting needs an operator in the
# tree that fixes the dim's size: `Delay` fixes the number of channels, and a
# window over time fixes the number of samples.)

# %%
B = fl.create_batched_linop(A, fl.BatchSpec({"C": 1}))
torch.testing.assert_close(B(x), A(x))
torch.testing.assert_close(B.H(x), A.H(x))

window = fl.Diagonal(torch.hann_window(4), A.ioshape)  # fixes the size of time
try:
    fl.split_linop(window @ A, {"N": 2})
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## A factory and property tests
#
# A factory builds a random instance for given named dims (`{dim: size}`,
# in order; `ishape` must be exactly those dims) and raises `NotApplicable`
# when it cannot. Once registered, `fst.cases(types=["Delay"])` draws it, as a
# leaf or inside random trees (chains, sums, normals, adjoints, scalings,
# stacks and concatenations of it).

# %%
from hypothesis import given, settings

from funclinop.testing import NotApplicable, randn, register_factory
from funclinop.testing import strategies as fst


@register_factory("Delay")
def make_delay(gen, dtype, dims, avoid):
    if len(dims) < 2:
        raise NotApplicable("Delay needs a channel dim and a time dim")
    names = tuple(dims)
    shift = int(torch.randint(0, 4, (), generator=gen))
    return Delay(randn(gen, (dims[names[-2]],), dtype), shift, names)


def split_or_refuse(op, x, dim):
    """Batching over ``dim`` gives ``op`` back, or is refused with a ValueError."""
    try:
        B = fl.create_batched_linop(op, fl.BatchSpec({dim: 1}))
    except ValueError:
        return False
    torch.testing.assert_close(B(x), op(x))
    return True


@settings(deadline=None)  # the first examples compile kernels and take longer than 200 ms
@given(fst.cases(types=["Delay"], min_size=1))
def test_delay(case):
    check_adjoint(case.op, case.x)
    check_normal(case.op, case.x)
    for dim in case.dims:
        split_or_refuse(case.op, case.x, dim)
    if isinstance(case.op, Delay):  # a bare Delay: channels split, time does not
        channel, time = case.op.ioshape[-2:]
        assert split_or_refuse(case.op, case.x, channel)
        window = fl.Diagonal(torch.ones(case.dims[time], dtype=case.dtype), case.op.ioshape)
        assert not split_or_refuse(window @ case.op, case.x, time)


# %% [markdown]
# In a project, `test_delay` sits in a test file and pytest runs it; here we
# call it directly, which runs hypothesis with its default settings (100
# examples) apart from the deadline.

# %%
test_delay()
print("100 random operators with Delay leaves passed")
