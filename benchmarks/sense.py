"""The SENSE model three ways: funclinop, hand-written torch, torchlinops.

Shared by the SENSE, batching and GPU benchmarks so that every script times
the same operators on the same data.
"""

import torch

from funclinop.demo import sense_operator

try:
    import torchlinops as tl
except ImportError:  # the comparison is optional
    tl = None


def data(C, N, device="cpu", seed=0, accel=3):
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(C, N, N, dtype=torch.complex64, generator=g)
    lines = torch.zeros(N, dtype=torch.bool)
    lines[::accel] = True
    lines[N // 2 - N // 16: N // 2 + N // 16] = True
    mask = lines[None, :].expand(N, N).contiguous()
    x = torch.randn(N, N, dtype=torch.complex64, generator=g)
    return maps.to(device), mask.to(device), x.to(device)


# the demo's operator: Sampling ∘ FFT(centered) ∘ Dense(coil maps)
funclinop_sense = sense_operator


def torchlinops_sense(maps, mask):
    S = tl.Dense(maps, tl.Dim("CNxNy"), tl.Dim("NxNy"), tl.Dim("CNxNy"))
    F = tl.FFT(2, batch_shape=("C",), centered=True)
    P = tl.Sampling.from_mask(mask, tuple(mask.shape), input_shape=("Kx", "Ky"), batch_shape=("C",))
    return P @ F @ S


class Plain:
    """Hand-written torch: what one would write without a library."""

    def __init__(self, maps, mask):
        self.maps, self.maps_conj = maps, maps.conj()
        self.flat = torch.nonzero(mask.flatten()).squeeze(1)
        self.mask = mask.to(maps.dtype)
        self.shape = mask.shape

    @staticmethod
    def fft(x):
        return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=(-2, -1)), dim=(-2, -1), norm="ortho"), dim=(-2, -1))

    @staticmethod
    def ifft(k):
        return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=(-2, -1)), dim=(-2, -1), norm="ortho"), dim=(-2, -1))

    def forward(self, x):
        return self.fft(self.maps * x).flatten(-2)[..., self.flat]

    def adjoint(self, y):
        k = torch.zeros(y.shape[:-1] + (self.shape[0] * self.shape[1],), dtype=y.dtype, device=y.device)
        k = k.index_copy(-1, self.flat, y).unflatten(-1, self.shape)
        return (self.maps_conj * self.ifft(k)).sum(0)

    def normal(self, x):
        return (self.maps_conj * self.ifft(self.mask * self.fft(self.maps * x))).sum(0)
