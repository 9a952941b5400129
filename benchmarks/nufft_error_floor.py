"""The least error any interpolator reaches on an oversampled grid (the NUFFT's floor).

A NUFFT divides the image by an apodisation ``s_n``, transforms it on the grid
``G`` and interpolates each location from ``W`` taps per dim. For a white
image, its squared relative L2 error is the mean over the image frequencies
``ν_n = n / G`` and the locations of ``|s_n Σ_j c_j e^(2πi d_j ν_n) − 1|²``.
For each ``W`` and oversampling this script reports, in 1-D:

- ``kaiser_bessel``: the Kaiser–Bessel kernel (Beatty's β), ``c_j = φ(d_j)``;
- ``minmax``: the least-squares weights per location (funclinop's default),
  for an apodisation whose β is tuned (``minmax_table``);
- ``minmax, s tuned``: the same after re-optimising every ``s_n`` too
  (alternating least squares): the apodisation's shape is not the limit;

and in 2-D, for 4 taps, the least-squares error over all ``W²`` weights of a
location jointly (not a product of 1-D weights): separable weights lose
nothing. Run ``python benchmarks/nufft_error_floor.py`` (``--n 64``).
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from funclinop.ops.interp import _kb_transform_np, kaiser_bessel_beta, minmax_table  # noqa: E402


def _design(n, g, width, s, offsets):
    """(U, n, W) complex: s_n e^(2πi d_j ν_n) for each offset's taps."""
    nu = (np.arange(n) - n // 2) / g
    d = offsets[:, None] - (np.floor(offsets - width / 2)[:, None] + 1 + np.arange(width))
    return s[None, :, None] * np.exp(2j * np.pi * d[:, None, :] * nu[None, :, None]), d


def _ls(A):
    """Least-squares real weights per offset, and the RMS error."""
    system = np.concatenate([A.real, A.imag], 1)
    rhs = np.concatenate([np.ones(A.shape[1]), np.zeros(A.shape[1])])
    c = np.stack([np.linalg.lstsq(m, rhs, rcond=None)[0] for m in system])
    return c, float(np.sqrt(np.mean(np.abs(np.einsum("unj,uj->un", A, c) - 1) ** 2)))


def one_d(n, g, width, offsets):
    nu = (np.arange(n) - n // 2) / g
    kb_beta = kaiser_bessel_beta(width, g / n)
    A, d = _design(n, g, width, 1 / _kb_transform_np(nu, width, kb_beta), offsets)
    x2 = (2 * d / width) ** 2
    phi = np.where(x2 < 1, np.i0(kb_beta * np.sqrt(np.clip(1 - x2, 0, None))), 0)
    kb = float(np.sqrt(np.mean(np.abs(np.einsum("unj,uj->un", A, phi) - 1) ** 2)))
    t = minmax_table(n, g, width)
    s = 1 / _kb_transform_np(nu, width, t.beta)
    A, _ = _design(n, g, width, s, offsets)
    c, mm = _ls(A)
    for _ in range(10):  # alternate: the best s_n for these weights, then the best weights
        B = np.einsum("unj,uj->un", A / s[None, :, None], c)
        s = (B.conj().sum(0) / (np.abs(B) ** 2).sum(0)).real
        A, _ = _design(n, g, width, s, offsets)
        c, tuned = _ls(A)
    return kb, mm, tuned


def two_d_joint(n, g, width, offsets):
    nu = (np.arange(n) - n // 2) / g
    s = 1 / _kb_transform_np(nu, width, minmax_table(n, g, width).beta)
    A, _ = _design(n, g, width, s, offsets)
    sq_joint, sq_sep = [], []
    for a in range(len(offsets)):
        for b in range(len(offsets)):
            J = (A[a][:, None, :, None] * A[b][None, :, None, :]).reshape(n * n, width * width)
            _, e = _ls(J[None])
            sq_joint.append(e**2)
            ca, _ = _ls(A[a][None])
            cb, _ = _ls(A[b][None])
            sep = (ca[0][:, None] * cb[0][None, :]).ravel()
            sq_sep.append(np.mean(np.abs(J @ sep - 1) ** 2))
    return math.sqrt(np.mean(sq_joint)), math.sqrt(np.mean(sq_sep))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64, help="image size per dim (default 64)")
    args = p.parse_args(argv)
    n = args.n
    offsets = (np.arange(32) + 0.5) / 32
    print(f"1-D, N = {n}: relative L2 error (RMS over frequencies and locations)")
    print(f"{'oversamp':>8} {'W':>2} {'kaiser_bessel':>14} {'minmax':>9} {'minmax, s tuned':>16}")
    for oversamp, width in [(1.25, 4), (1.25, 5), (1.25, 6), (2.0, 4), (2.0, 6)]:
        g = math.ceil(oversamp * n - 1e-9)
        kb, mm, tuned = one_d(n, g, width, offsets)
        print(f"{oversamp:>8} {width:>2} {kb:>14.2e} {mm:>9.2e} {tuned:>16.2e}")
    m = min(n, 32)
    g = math.ceil(1.25 * m - 1e-9)
    joint, sep = two_d_joint(m, g, 4, (np.arange(8) + 0.5) / 8)
    print(f"\n2-D, {m}×{m}, oversamp 1.25, W = 4: least squares over all 16 weights jointly "
          f"{joint:.2e}, separable min-max {sep:.2e}")


if __name__ == "__main__":
    main()
