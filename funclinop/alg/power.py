"""The power method: the largest-magnitude eigenpair of a Hermitian operator."""

import torch

from ..dims import named
from ..linop import Linop
from ._vec import inner, norm2, operator_dtype_device, safe_div

__all__ = ["power_method"]


def power_method(A, x0=None, *, max_iter=100, tol=1e-6, generator=None, dtype=None, device=None):
    """The largest-magnitude eigenvalue of a Hermitian A and a unit eigenvector.

    Parameters
    ----------
    A : Linop or callable
        A Hermitian operator mapping its input shape to itself (``A.N`` of
        any linop qualifies).
    x0 : Tensor, optional
        The starting vector. By default a random one (from ``generator``)
        shaped by A's input dims, whose sizes must then be fixed by A
        (``A.size(dim)``); a ``"..."`` in A's ishape adds no batch dims.
    max_iter : int
        The most iterations to run.
    tol : float or None
        Stop when the eigenvalue estimate changes by at most ``tol`` times
        its magnitude. With ``tol=None`` or ``tol=0`` exactly ``max_iter``
        iterations run and no Python branch depends on tensor values (use
        this mode under ``torch.func`` transforms and ``torch.compile``).
    generator : torch.Generator, optional
        Draws the random starting vector.
    dtype, device : optional
        Of the random starting vector; by default those of A's tensors.

    Returns
    -------
    (eigenvalue, vector)
        The Rayleigh quotient ``vᴴ A v`` (a real 0-dim tensor, signed) and
        the unit vector ``v`` (shaped like ``x0``). The whole tensor is one
        vector. A zero operator gives eigenvalue 0 and the normalised start
        vector; nothing divides by zero.

    Examples
    --------
    >>> import torch, funclinop as fl
    >>> A = fl.Diagonal(torch.tensor([1.0, -3.0, 2.0]), ("N",))
    >>> lam, v = fl.alg.power_method(A, torch.ones(3), tol=1e-10, max_iter=500)
    >>> round(float(lam), 4)
    -3.0
    """
    if not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"power_method: max_iter must be a non-negative int, got {max_iter!r}")
    if x0 is None:
        x0 = _random_start(A, generator, dtype, device)
    elif not isinstance(x0, torch.Tensor):
        raise TypeError(f"power_method: x0 must be a torch.Tensor, got {type(x0).__name__}")
    fixed = not tol
    v = safe_div(x0, norm2(x0).sqrt())
    eigenvalue = torch.zeros_like(norm2(v))
    for k in range(max_iter):
        w = A(v)
        previous, eigenvalue = eigenvalue, inner(v, w).real
        # A w == 0 keeps v: the zero operator's eigenvalue is 0, not NaN.
        w_norm = norm2(w).sqrt()
        v = torch.where(w_norm == 0, v, safe_div(w, w_norm))
        if not fixed and k > 0 and bool((eigenvalue - previous).abs() <= tol * eigenvalue.abs()):
            break
    return eigenvalue, v


def _random_start(A, generator, dtype, device):
    if not isinstance(A, Linop):
        raise TypeError(
            f"power_method: give x0 when A is not a Linop (got {type(A).__name__}); "
            "the start vector's shape comes from the operator's dim sizes"
        )
    shape = []
    for d in named(A.ishape):
        n = A.size(d)
        if n is None:
            raise ValueError(
                f"power_method: {A._name()} does not fix the size of input dim {d!r}; "
                "pass x0 to give the vector's shape"
            )
        shape.append(n)
    leaf_dtype, leaf_device = operator_dtype_device(A)
    if dtype is None:
        dtype = torch.get_default_dtype() if leaf_dtype is None else leaf_dtype
    if device is None:
        device = leaf_device
    if generator is not None and device is not None and generator.device != device:
        x0 = torch.randn(shape, dtype=dtype, generator=generator, device=generator.device)
        return x0.to(device)
    return torch.randn(shape, dtype=dtype, generator=generator, device=device)
