"""The finufft backend of the NUFFT: custom torch ops and the leaf operator FiNUFFT.

The transform, in funclinop's convention: ``locs`` holds sample locations in
grid units, centred (coordinate ``d`` in ``[-N_d/2, N_d/2)``; the transform is
periodic in each coordinate with period ``N_d``, so any real value is
accepted), and with array index ``i_d`` and centred index
``n_d = i_d - N_d // 2``

    y[..., l] = (prod_d N_d)^(-1/2) sum_n x[..., n] exp(-2 pi i sum_d locs[l, d] n_d / N_d),

its adjoint the conjugate transpose. In finufft's terms this is a type-2
transform with ``isign=-1`` and ``modeord=0`` (modes ``-N//2 .. (N-1)//2``,
the same centring for odd and even ``N``) at the points
``2 pi locs[:, d] / N_d`` (finufft folds ``[-3 pi, 3 pi)``, the rest is
wrapped here); the adjoint is the
type-1 transform of the same plan (``execute_adjoint``). Both come from one
kernel and one fine grid, so they are adjoint to each other to rounding, not
only to ``eps``.

Two custom ops, ``funclinop::finufft_type2`` and ``funclinop::finufft_type1``,
work on a canonical layout: data ``(B, F, *N)`` or ``(B, F, M)`` and locations
``(F, M, ndim)`` (``F`` trajectories, one per frame; ``B`` transforms that
share one, run as finufft's ``n_trans`` in one plan). They carry fake tensors
(``torch.compile(fullgraph=True)`` traces them), an autograd rule (exact
gradients with respect to the data and the locations: the derivative with
respect to a location is a type-2 transform of ``-2 pi i n_d / N_d x``) and a
vmap rule (the vmapped dim joins ``B``, or ``F`` where the locations are
batched). A plan is made per call: planning and sorting the points costs a
few percent of a transform at imaging sizes (``benchmarks/bench_nufft.py``),
and keeping plans would be hidden state.

>>> import torch
>>> from funclinop.ops.finufft import finufft_type2
>>> x = torch.zeros(1, 1, 4, dtype=torch.complex128); x[0, 0, 2] = 2   # n = 0: a constant
>>> y = finufft_type2(x, torch.tensor([[[0.3], [-1.7]]], dtype=torch.float64), 1e-9)
>>> y.shape, torch.allclose(y, torch.ones(1, 1, 2, dtype=torch.complex128))
(torch.Size([1, 1, 2]), True)
"""

import math

import torch

from ..dims import ELLIPSIS, as_optional_shape, fresh, named
from ..errors import DeviceError, ShapeError
from ..linop import Linop, derived, static
from ._util import check_slices, fixed_kind, int_tuple
from .fft import grid_names

__all__ = ["FiNUFFT", "finufft_type1", "finufft_type2", "nufft_type1", "nufft_type2", "import_finufft"]

_INSTALL = "pip install 'funclinop[finufft]'"


def import_finufft(what="FiNUFFT"):
    """The finufft module, or an ImportError saying how to install it."""
    try:
        import finufft
    except ImportError as e:
        raise ImportError(f"{what} needs the finufft package: {_INSTALL}") from e
    return finufft


def _cufinufft():
    try:
        import cufinufft
    except ImportError:
        return None
    return cufinufft


def check_device(what, device):
    """Raise a DeviceError for a device finufft cannot run on."""
    if device.type == "cpu" or (device.type == "cuda" and _cufinufft() is not None):
        return
    extra = " (CUDA tensors need cufinufft, which is not installed)" if device.type == "cuda" else ""
    raise DeviceError(f"{what}: finufft runs on CPU tensors, got a tensor on {device}{extra}")


# ---- the transforms on numpy / cupy arrays ------------------------------------------


def _points(locs, grid_size, to_array):
    """finufft's points: ``2 pi locs / N``, one contiguous array per dim.

    finufft folds points in ``[-3 pi, 3 pi)`` itself; others are wrapped into
    ``[-pi, pi)`` here, only where needed (it costs more than all the rest)."""
    pts = []
    for d, n in enumerate(grid_size):
        p = locs[:, d].detach() * (2 * math.pi / n)
        lo, hi = torch.aminmax(p)
        if lo < -3 * math.pi or hi >= 3 * math.pi:
            p = torch.remainder(p + math.pi, 2 * math.pi) - math.pi
        pts.append(to_array(p))
    return pts


def _plan(lib, nufft_type, grid_size, n_trans, eps, dtype, locs, to_array):
    opts = {"nthreads": torch.get_num_threads()} if lib.__name__ == "finufft" else {}
    isign = -1 if nufft_type == 2 else 1
    plan = lib.Plan(nufft_type, tuple(grid_size), n_trans, eps, isign, dtype, modeord=0, **opts)
    plan.setpts(*_points(locs, grid_size, to_array))
    return plan


def _run(data, locs, grid_size, eps, adjoint):
    """Type 2 (``adjoint=False``: ``(B, F, *N) -> (B, F, M)``) or its adjoint, type 1."""
    B, F = data.shape[:2]
    M = locs.shape[1]
    shape = (B, F) + ((M,) if not adjoint else tuple(grid_size))
    if B * F * M * math.prod(grid_size) == 0:
        return data.new_zeros(shape)
    cuda = data.device.type == "cuda"
    lib = _cufinufft() if cuda else import_finufft("funclinop::finufft")
    to_array = _cuda_array if cuda else _numpy
    dtype = "complex64" if data.dtype == torch.complex64 else "complex128"
    scale = 1 / math.sqrt(math.prod(grid_size))
    frames = []
    for f in range(F):
        x = to_array(data[:, f].contiguous())
        if cuda:  # untested: cufinufft is not part of the test environment
            y = _plan(lib, 1 if adjoint else 2, grid_size, B, eps, dtype, locs[f], to_array).execute(x)
        else:  # one plan for both directions: the type-1 adjoint uses the same kernel and grid
            plan = _plan(lib, 2, grid_size, B, eps, dtype, locs[f], to_array)
            y = plan.execute_adjoint(x) if adjoint else plan.execute(x)
        y *= scale
        frames.append(torch.as_tensor(y, device=data.device).reshape(shape[:1] + shape[2:]))
    return frames[0].unsqueeze(1) if F == 1 else torch.stack(frames, dim=1)


def _numpy(t):
    return t.detach().resolve_conj().numpy()


def _cuda_array(t):
    # cufinufft (>= 2.2) takes and returns torch CUDA tensors
    return t.detach().resolve_conj().contiguous()


# ---- the custom ops ------------------------------------------------------------------


def _check(name, data, locs, ndata):
    if not data.is_complex():
        raise TypeError(f"{name}: data must be complex64 or complex128, got {data.dtype}")
    if locs.dtype != data.real.dtype:
        raise TypeError(f"{name}: locs must be {data.real.dtype} for {data.dtype} data, got {locs.dtype}")
    if data.ndim != ndata or locs.ndim != 3 or data.shape[1] != locs.shape[0]:
        raise ShapeError(
            f"{name}: expected data (B, F, ...) and locs (F, M, ndim), got data of shape "
            f"{tuple(data.shape)} and locs of shape {tuple(locs.shape)}"
        )
    check_device(name, data.device)


@torch.library.custom_op("funclinop::finufft_type2", mutates_args=())
def finufft_type2(x: torch.Tensor, locs: torch.Tensor, eps: float) -> torch.Tensor:
    """Uniform to nonuniform: ``x`` of shape ``(B, F, *N)``, ``locs`` ``(F, M, ndim)`` -> ``(B, F, M)``."""
    _check("funclinop::finufft_type2", x, locs, 2 + locs.shape[-1])
    return _run(x, locs, tuple(x.shape[2:]), eps, adjoint=False)


@torch.library.custom_op("funclinop::finufft_type1", mutates_args=())
def finufft_type1(y: torch.Tensor, locs: torch.Tensor, grid_size: list[int], eps: float) -> torch.Tensor:
    """Nonuniform to uniform, the adjoint of :func:`finufft_type2`: ``(B, F, M)`` -> ``(B, F, *grid_size)``."""
    _check("funclinop::finufft_type1", y, locs, 3)
    if len(grid_size) != locs.shape[-1] or y.shape[2] != locs.shape[1]:
        raise ShapeError(
            f"funclinop::finufft_type1: data of shape {tuple(y.shape)}, locs of shape "
            f"{tuple(locs.shape)} and grid_size {tuple(grid_size)} do not match"
        )
    return _run(y, locs, tuple(grid_size), eps, adjoint=True)


@finufft_type2.register_fake
def _(x, locs, eps):
    return x.new_empty((x.shape[0], x.shape[1], locs.shape[1]))


@finufft_type1.register_fake
def _(y, locs, grid_size, eps):
    return y.new_empty((y.shape[0], y.shape[1], *grid_size))


# ---- autograd ----------------------------------------------------------------------------
# register_autograd makes the custom ops differentiable under plain autograd
# and torch.compile; torch.func.grad rejects the autograd.Function that torch
# generates for it (no setup_context: pytorch/pytorch#170834), so the operator
# calls the ops through the two autograd.Functions below, which share the
# same setup and backward. generate_vmap_rule runs their forward and backward
# under vmap, where the ops' own vmap rule takes over.


def _frequency_weighted(x, ndim):
    """``-2 pi i n_d / N_d x`` for each grid dim d, stacked into the batch:
    ``(B, F, *N) -> (ndim * B, F, *N)`` (the derivative's data, d major)."""
    grid = x.shape[2:]
    parts = []
    for d, n in enumerate(grid):
        k = torch.arange(n, device=x.device, dtype=x.real.dtype) - n // 2
        w = (-2j * math.pi / n) * k.reshape((n,) + (1,) * (ndim - 1 - d))
        parts.append(x * w.to(x.dtype))
    return torch.cat(parts, dim=0)


def _locs_grad(a, u, locs, eps):
    """``sum_b Re(conj(a) type2(-2 pi i n_d / N_d u))`` per location and dim.

    The gradient with respect to ``locs`` of both transforms: for type 2,
    ``Re(conj(dy/dt) g)`` with ``dy/dt = type2(-2 pi i n / N x)`` (``a = g``,
    ``u = x``; a real part is unchanged by conjugation); for type 1, ``a = y``,
    ``u = g``.
    """
    ndim = locs.shape[-1]
    d = nufft_type2(_frequency_weighted(u, ndim), locs, eps)  # (ndim * B, F, M)
    d = d.reshape((ndim,) + tuple(a.shape))
    return (a.conj() * d).real.sum(1).permute(1, 2, 0)


def _setup_type2(ctx, inputs, output):
    x, locs, eps = inputs
    ctx.save_for_backward(x, locs)
    ctx.eps = eps


def _backward_type2(ctx, g):
    x, locs = ctx.saved_tensors
    gx = nufft_type1(g, locs, list(x.shape[2:]), ctx.eps) if ctx.needs_input_grad[0] else None
    gl = _locs_grad(g, x, locs, ctx.eps) if ctx.needs_input_grad[1] else None
    return gx, gl, None


def _setup_type1(ctx, inputs, output):
    y, locs, grid_size, eps = inputs
    ctx.save_for_backward(y, locs)
    ctx.eps = eps


def _backward_type1(ctx, g):
    y, locs = ctx.saved_tensors
    gy = nufft_type2(g, locs, ctx.eps) if ctx.needs_input_grad[0] else None
    gl = _locs_grad(y, g, locs, ctx.eps) if ctx.needs_input_grad[1] else None
    return gy, gl, None, None


finufft_type2.register_autograd(_backward_type2, setup_context=_setup_type2)
finufft_type1.register_autograd(_backward_type1, setup_context=_setup_type1)


class _Type2(torch.autograd.Function):
    generate_vmap_rule = True
    forward = staticmethod(lambda x, locs, eps: finufft_type2(x, locs, eps))
    setup_context = staticmethod(_setup_type2)
    backward = staticmethod(_backward_type2)


class _Type1(torch.autograd.Function):
    generate_vmap_rule = True
    forward = staticmethod(lambda y, locs, grid_size, eps: finufft_type1(y, locs, grid_size, eps))
    setup_context = staticmethod(_setup_type1)
    backward = staticmethod(_backward_type1)


# The autograd.Function costs a few hundred µs per call (it inspects its
# signature): called only where a gradient may be taken. Under torch.func.grad
# the tensors being differentiated (and all that depend on them) require grad.


def nufft_type2(x, locs, eps):
    """:func:`finufft_type2`, differentiable under ``torch.func`` transforms too."""
    if x.requires_grad or locs.requires_grad:
        return _Type2.apply(x, locs, eps)
    return finufft_type2(x, locs, eps)


def nufft_type1(y, locs, grid_size, eps):
    """:func:`finufft_type1`, differentiable under ``torch.func`` transforms too."""
    if y.requires_grad or locs.requires_grad:
        return _Type1.apply(y, locs, list(grid_size), eps)
    return finufft_type1(y, locs, list(grid_size), eps)


# ---- vmap ---------------------------------------------------------------------------------


def _vmap(info, in_dims, data, locs, rest, call):
    """Run ``call(data, locs)`` with the vmapped dim folded into B (shared
    locations) or F (batched locations); returns ``(out, out_dim)``."""
    ddim, ldim = in_dims
    if ldim is None:
        data = data.movedim(ddim, 0)
        v, b = data.shape[:2]
        out = call(data.reshape((v * b,) + tuple(data.shape[2:])), locs, *rest)
        return out.reshape((v, b) + tuple(out.shape[1:])), 0
    locs = locs.movedim(ldim, 0)
    v, f = locs.shape[:2]
    if ddim is None:
        data = data.unsqueeze(1).expand((data.shape[0], v) + tuple(data.shape[1:]))
    else:
        data = data.movedim(ddim, 1)
    b = data.shape[0]
    out = call(data.reshape((b, v * f) + tuple(data.shape[3:])), locs.reshape((v * f,) + tuple(locs.shape[2:])), *rest)
    return out.reshape((b, v, f) + tuple(out.shape[2:])), 1


@finufft_type2.register_vmap
def _(info, in_dims, x, locs, eps):
    return _vmap(info, in_dims[:2], x, locs, (eps,), finufft_type2)


@finufft_type1.register_vmap
def _(info, in_dims, y, locs, grid_size, eps):
    return _vmap(info, in_dims[:2], y, locs, (grid_size, eps), finufft_type1)


# ---- the operator --------------------------------------------------------------------------


def _check_locs(locs):
    if not isinstance(locs, torch.Tensor):
        raise TypeError(f"FiNUFFT: locs must be a torch.Tensor, got {type(locs).__name__}")
    if not locs.is_floating_point() or locs.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"FiNUFFT: locs must be a float32 or float64 tensor, got {locs.dtype}")
    if locs.ndim == 0 or not 1 <= locs.shape[-1] <= 3:
        raise ShapeError(
            f"FiNUFFT: locs must have shape (..., ndim) with ndim 1, 2 or 3, got {tuple(locs.shape)}"
        )


class FiNUFFT(Linop):
    """The NUFFT computed by finufft: a uniform grid to nonuniform samples.

    ``y[..., l] = (prod N)^(-1/2) sum_n x[..., n] exp(-2 pi i sum_d locs[l, d] n_d / N_d)``
    with the centred index ``n_d = i_d - N_d // 2``; the adjoint (``A.H``) is
    the conjugate transpose, computed by the same finufft plan, so it is
    adjoint to rounding. Accurate to ``eps`` (relative, finufft's tolerance)
    against that sum.

    ``locs`` has shape ``(*F, *L, ndim)`` (``ndim`` in 1..3), in grid units:
    coordinate ``d`` in ``[-N_d/2, N_d/2)`` (other values wrap around,
    period ``N_d``). ``ishape`` ends with the ``ndim`` grid dims, ``oshape``
    with the ``len(L)`` sample dims; the rest of both are the same batch dims
    (a leading ``"..."`` in both or neither). Leading locs dims ``F`` beyond
    the sample dims are the last batch dims: one trajectory per frame.
    Defaults: ``("...", "Nx"[, "Ny"[, "Nz"]])`` and ``("...", "M"[, "M1" ...])``.

    Batch dims of the data run as finufft's ``n_trans`` in one plan, with
    ``torch.get_num_threads()`` threads; ``torch.func`` transforms, gradients
    with respect to the data and ``locs``, and ``torch.compile(fullgraph=True)``
    work through the custom ops ``funclinop::finufft_type2`` / ``type1``.
    The output is complex in the precision torch's promotion gives the input
    and ``locs``. Needs finufft (``pip install 'funclinop[finufft]'``); CUDA
    tensors need cufinufft.

    >>> import torch, funclinop as fl
    >>> from funclinop.nufft import FiNUFFT
    >>> locs = torch.tensor([[0.0, 0.0], [1.5, -2.0], [-3.0, 2.5]])
    >>> A = FiNUFFT(locs, (8, 8), ishape=("C", "Nx", "Ny"), oshape=("C", "K"))
    >>> A.ishape, A.oshape
    (('C', 'Nx', 'Ny'), ('C', 'K'))
    >>> y = A(torch.ones(2, 8, 8))           # the mean times 8 at the centre
    >>> y.shape, y.dtype, round(y[0, 0].real.item(), 4)
    (torch.Size([2, 3]), torch.complex64, 8.0)
    >>> A.H(y).shape
    torch.Size([2, 8, 8])
    """

    locs: torch.Tensor
    grid_size: tuple = static(converter=lambda v, what: int_tuple(v, what))
    ishape: tuple = static(default=None, kw_only=True, converter=as_optional_shape)
    oshape: tuple = static(default=None, kw_only=True, converter=as_optional_shape)
    eps: float = static(default=1e-6, kw_only=True)
    # locs dims that are batch dims (one trajectory per frame), then the sample dims
    frame_shape: tuple = derived()
    sample_shape: tuple = derived()

    def _defaults(self):
        _check_locs(self.locs)
        ndim, out = self.locs.shape[-1], {}
        if self.ishape is None:
            out["ishape"] = (ELLIPSIS,) + grid_names(ndim, what="FiNUFFT")
        if self.oshape is None:
            ishape = out.get("ishape", self.ishape)
            out["oshape"] = (ELLIPSIS,) + _sample_names(self.locs.ndim - 1, set(named(ishape)))
        return out

    def _check(self):
        ndim = self.locs.shape[-1]
        if len(self.grid_size) != ndim:
            raise ValueError(f"FiNUFFT: grid_size has {len(self.grid_size)} entries {self.grid_size}, "
                             f"expected {ndim} (one per coordinate of locs)")
        check_device("FiNUFFT", self.locs.device)
        if self.locs.device.type == "cpu":
            import_finufft()
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ValueError(f"FiNUFFT: eps must be a float in (0, 1), got {eps!r}")

    def _precompute(self):
        frames, samples = _split_shapes(self.ishape, self.oshape, self.locs.shape[-1], self.locs.shape[:-1])
        return {"frame_shape": frames, "sample_shape": samples}

    @property
    def grid_shape(self):
        return named(self.ishape)[-len(self.grid_size):]

    def _flat_locs(self, dtype):
        """locs as ``(F, M, ndim)`` in ``dtype``."""
        k, shape = len(self.frame_shape), self.locs.shape
        return self.locs.reshape(_prod(shape[:k]), _prod(shape[k:-1]), shape[-1]).to(dtype)

    def apply(self, x):
        ndim, k = len(self.grid_size), len(self.frame_shape)
        dtype = _compute_dtype(x.dtype, self.locs.dtype)
        batch = x.shape[: x.ndim - ndim]
        split = len(batch) - k
        x = x.to(dtype).reshape((_prod(batch[:split]), _prod(batch[split:])) + tuple(self.grid_size))
        y = nufft_type2(x, self._flat_locs(_REAL[dtype]), self.eps)
        return y.reshape(tuple(batch) + tuple(self.locs.shape[k:-1]))

    def apply_adjoint(self, y):
        k, s = len(self.frame_shape), len(self.sample_shape)
        dtype = _compute_dtype(y.dtype, self.locs.dtype)
        batch = y.shape[: y.ndim - s]
        split = len(batch) - k
        y = y.to(dtype).reshape(_prod(batch[:split]), _prod(batch[split:]), _prod(self.locs.shape[k:-1]))
        x = nufft_type1(y, self._flat_locs(_REAL[dtype]), self.grid_size, self.eps)
        return x.reshape(tuple(batch) + tuple(self.grid_size))

    def _locs_axes(self):
        """{dim: axis of locs} for the frame and sample dims."""
        return {d: i for i, d in enumerate(self.frame_shape + self.sample_shape)}

    def size(self, dim):
        if dim in self.grid_shape:
            return self.grid_size[self.grid_shape.index(dim)]
        axis = self._locs_axes().get(dim)
        return None if axis is None else self.locs.shape[axis]

    def split_kind(self, dim):
        return fixed_kind(self, dim, self.grid_shape)

    def split_refusal(self, dim):
        return "it is a grid dim the transform sums over (split the sample or batch dims instead)"

    def tile(self, slices):
        check_slices(self, slices, self.grid_shape, self.split_refusal(None))
        axes = self._locs_axes()
        index = tuple(slices.get(d, slice(None)) for d in axes)
        if all(s == slice(None) for s in index):
            return self
        return self._derive(locs=self.locs[index])


def _prod(shape):
    n = 1
    for s in shape:
        n = n * s
    return n


# dicts rather than dtype.to_real / to_complex, which dynamo cannot trace
_REAL = {torch.complex64: torch.float32, torch.complex128: torch.float64, torch.complex32: torch.float16}
_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _compute_dtype(dtype, locs_dtype):
    """The complex dtype of the transform: torch's promotion of the data and
    ``locs``, at least single precision (finufft has no half precision)."""
    real = torch.promote_types(_REAL.get(dtype, dtype), locs_dtype)
    return _COMPLEX[torch.promote_types(real, torch.float32)]


def _sample_names(n, avoid):
    names = []
    for _ in range(n):
        names.append(fresh("M", set(avoid) | set(names)))
    return tuple(names)


def _split_shapes(ishape, oshape, ndim, lshape):
    """``(frame dims, sample dims)``: the names of the leading ``locs`` dims."""
    inames, onames = named(ishape), named(oshape)
    shapes = f"ishape {ishape} and oshape {oshape}"
    if len(inames) < ndim:
        raise ShapeError(f"FiNUFFT: ishape {ishape} must end with the {ndim} grid dims")
    batch = inames[: len(inames) - ndim]
    s = 0
    while s < len(onames) and onames[len(onames) - 1 - s] not in inames:
        s += 1
    if onames[: len(onames) - s] != batch or (ishape[:1] == (ELLIPSIS,)) != (oshape[:1] == (ELLIPSIS,)):
        raise ShapeError(
            f"FiNUFFT: {shapes} must have the same batch dims in front of the {ndim} grid dims "
            f"and the sample dims (with a leading '...' in both or neither)"
        )
    k = len(lshape) - s
    if k < 0 or k > len(batch):
        raise ShapeError(
            f"FiNUFFT: locs of shape {tuple(lshape) + (ndim,)} has {len(lshape)} dims before the "
            f"last, but {shapes} give {s} sample dims and {len(batch)} batch dims"
        )
    return batch[len(batch) - k:], onames[len(onames) - s:]
