"""``solve``: a linear solve that differentiates by the implicit function theorem.

The gradient of a solution ``x = A⁻¹ b`` is that of the *solution*, not of
the iterations that approximate it: the backward pass solves one adjoint
system ``Aᴴ λ = x̄`` and gives ``b̄ = λ`` and, for every tensor leaf θ of
``A``, ``θ̄ = -(∂(A x)/∂θ)ᴴ λ`` (the vjp of ``A.apply`` with respect to its
leaves). Memory does not grow with the number of iterations.

It is one ``torch.autograd.Function`` whose inputs are ``b``, ``x0``,
``damp`` and the flat tensor leaves of ``A`` and ``M``, so that autograd and
``torch.func`` see every leaf: ``grad``, ``vjp``, ``jacrev``, ``jvp``,
``vmap`` (over right-hand sides and over stacked operators, nested too) and
``loss.backward()`` all work. Under ``vmap`` the problems of the batch run as
one batched solve in which every problem keeps its own step sizes and stops
on its own.
"""

import dataclasses
from typing import Callable

import torch
import torch.utils._pytree as tp

from ..dims import ELLIPSIS, named
from ..errors import DeviceError, ShapeError
from ..linop import Linop
from ._vec import bcast, operator_dtype_device
from .cg import _cg, _require_finite
from .info import SolveInfo
from .lsqr import _lsqr, check_damp
from .minres import _minres

__all__ = ["solve"]

METHODS = ("cg", "minres", "lsqr")


def solve(A: Linop, b: torch.Tensor, *, method: str = "cg", x0: torch.Tensor | None = None,
          M: Linop | None = None, tol: float = 1e-6, max_iter: int = 100, damp: float = 0.0,
          return_info: bool = False, progress: bool = False,
          callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
          ) -> torch.Tensor | tuple[torch.Tensor, SolveInfo]:
    """Solve ``A x = b`` (or least squares), differentiably by implicit differentiation.

    Parameters
    ----------
    A : Linop or callable
        For ``"cg"`` a Hermitian positive (semi)definite operator (``A.N``,
        ``A.N + λ I``), for ``"minres"`` a Hermitian one, square in both
        cases; for ``"lsqr"`` any Linop. Gradients reach every floating
        tensor leaf of a Linop. A plain callable ``x -> A x`` is allowed
        for cg and minres; tensors it captures are constants (no gradient;
        not vmapped over): wrap it as ``fl.FunctionLinop(fn, params)`` to
        differentiate ``params``.
    b : Tensor
        The right-hand side: shaped like A's input (cg, minres) or output
        (lsqr). The whole tensor is one vector; ``vmap`` for independent
        problems.
    method : {"cg", "minres", "lsqr"}
    x0 : Tensor, optional
        The start (default zeros), shaped like ``x``. It changes where the
        iterations start, not the solution, and gets no gradient.
    M : Linop or callable, optional
        A Hermitian positive definite preconditioner approximating ``A⁻¹``
        (cg, minres), see :mod:`funclinop.alg.precond`. It changes the
        iterations, not the solution, and gets no gradient.
    tol : float or None
        The relative tolerance of each method's stopping test (see
        :func:`cg`, :func:`minres`, :func:`lsqr`). The adjoint solve of the
        backward pass uses the same one. With ``tol=None`` or ``0`` exactly
        ``max_iter`` iterations run with no Python branch on tensor values
        (for ``torch.compile``); ``solve`` works under ``vmap`` and
        ``grad`` either way.
    max_iter : int
    damp : float or Tensor
        Tikhonov damping: lsqr minimises ``||A x - b||² + damp² ||x||²``;
        cg and minres solve ``(A + damp² I) x = b``, so that
        ``solve(A.N, A.H(y), damp=d)`` and ``solve(A, y, method="lsqr",
        damp=d)`` agree. A real 0-dim tensor is differentiated too.
    return_info : bool
        Also return a :class:`SolveInfo`.
    progress : bool
        Show a ``tqdm`` progress bar with the residual norm (needs tqdm).
    callback : callable, optional
        ``callback(i, x, residual_norm)`` after iteration ``i`` (from 1),
        with the current iterate and its residual norm as the method
        tracks it. Under ``vmap`` both carry a leading batch axis.

    Returns
    -------
    Tensor, or (Tensor, SolveInfo) with ``return_info=True``.

    Notes
    -----
    Bad input is refused before any iteration: a non-square operator for cg
    or minres, a ``b``, ``x0`` or ``M`` of the wrong shape, an operator on
    another device, and (with a ``tol``) non-finite entries in ``b`` or ``x0``. Breakdown, singular
    systems and non-finite values inside the solve behave as in :func:`cg`.

    The gradient is exact for the exact solution; its accuracy is that of
    the forward and adjoint solves (both to ``tol``). The adjoint system of
    lsqr is the normal-equation system ``(AᴴA + damp² I) λ = x̄``, which is
    Hermitian positive definite and solved by CG (``A`` then ``A.H`` each
    iteration, as lsqr). ``progress`` and ``callback`` follow the forward
    solve only; with both off they cost nothing.

    Examples
    --------
    Learn a regularisation weight through a solve:

    >>> import torch, funclinop as fl
    >>> W = torch.randn(8, 4, dtype=torch.float64)
    >>> E = fl.Dense(W, ("M", "N"), ("N",), ("M",))
    >>> y = torch.randn(8, dtype=torch.float64)
    >>> def loss(lam):
    ...     R = fl.Diagonal(lam, ("N",))
    ...     x = fl.alg.solve(E.N + R, E.H(y), tol=1e-10)
    ...     return (E(x) - y).square().sum()
    >>> g = torch.func.grad(loss)(torch.full((4,), 0.1, dtype=torch.float64))
    >>> g.shape
    torch.Size([4])
    """
    who = f"solve(method={method!r})"
    _check_options(who, method, tol, max_iter, callback)
    damp = check_damp(damp, who)
    b = _check_tensor(who, "b", b)
    _check_operator(who, method, A, b)
    _check_devices(who, b, A, M)
    dtype = _promoted(A, b)
    b = b.to(dtype)
    if x0 is not None:
        x0 = _check_tensor(who, "x0", x0).to(dtype)
        if method != "lsqr" and x0.shape != b.shape:
            raise ShapeError(f"{who}: x0 of shape {tuple(x0.shape)} does not match b's shape {tuple(b.shape)}")
    if M is not None:
        _check_preconditioner(who, method, M, b)
    a_tree, a_leaves = _Tree.of(A)
    m_tree, m_leaves = _Tree.of(M) if M is not None else (None, [])
    problem = _Problem(
        method, tol, max_iter, who, a_tree, m_tree, len(a_leaves),
        hook=_Hook(progress, callback) if progress or callback else None,
    )
    damp_t = None if damp is None else torch.as_tensor(damp, dtype=torch.empty((), dtype=dtype).real.dtype)
    x, iterations, residual, converged = _solve(problem, (A, M), b, x0, damp_t, *a_leaves, *m_leaves)
    return (x, SolveInfo(iterations, residual, converged)) if return_info else x


# ---- checks -------------------------------------------------------------------------


def _check_options(who, method, tol, max_iter, callback):
    if method not in METHODS:
        raise ValueError(f"solve: method must be one of {METHODS}, got {method!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"{who}: max_iter must be a non-negative int, got {max_iter!r}")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < float("inf")):
        raise ValueError(f"{who}: tol must be None or a finite float >= 0, got {tol!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"{who}: callback must be callable, got {type(callback).__name__}")


def _check_tensor(who, name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if not (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"{who}: {name} must be a floating-point or complex tensor, got {t.dtype}")
    return t


def _check_operator(who, method, A, b):
    if not isinstance(A, Linop):
        if not callable(A):
            raise TypeError(f"{who}: A must be a Linop or a callable, got {type(A).__name__}")
        if method == "lsqr":
            raise TypeError(
                f"{who}: A must be a Linop (lsqr applies its adjoint A.H), got {type(A).__name__}; "
                "wrap a function with fl.FunctionLinop(fn, params, adjoint_fn=...)"
            )
        return
    if method != "lsqr" and not _square(A):
        raise ShapeError(
            f"{who}: {A._name()} is not square (it maps {_fmt(A.ishape)} to {_fmt(A.oshape)}); "
            f"{method} needs a Hermitian operator: solve the normal equations with A.N and A.H(b), "
            "or use method='lsqr' for least squares"
        )
    _check_shape(who, "b", b, "A", A, A.oshape if method == "lsqr" else A.ishape)


def _square(op):
    """``op`` maps its input shape to itself: the same dims, or dims of the same sizes
    (a square Dense from N to M, a renaming Identity)."""
    if named(op.ishape) == named(op.oshape):
        return True
    if (op.ishape[:1] == (ELLIPSIS,)) != (op.oshape[:1] == (ELLIPSIS,)):
        return False
    isizes = [op.size(d) for d in named(op.ishape)]
    osizes = [op.size(d) for d in named(op.oshape)]
    return None not in isizes and isizes == osizes


def _check_shape(who, name, t, role, op, shape):
    """``t`` fits dims ``shape`` of ``op`` (count, and every size ``op`` fixes)."""
    names = named(shape)
    ellipsis = shape[:1] == (ELLIPSIS,)
    if t.ndim != len(names) and not (ellipsis and t.ndim > len(names)):
        raise ShapeError(
            f"{who}: {name} of shape {tuple(t.shape)} has {t.ndim} dims; {role} = {op._name()} expects "
            f"{'at least ' if ellipsis else ''}{len(names)} for {_fmt(shape)}"
        )
    for k, d in enumerate(names):
        n = op.size(d)
        size = t.shape[t.ndim - len(names) + k]
        if n is not None and size != n:
            raise ShapeError(
                f"{who}: {name} dim {d!r} has size {size}, but {role} = {op._name()} has size {n} "
                f"there ({name} shape {tuple(t.shape)})"
            )


def _check_preconditioner(who, method, M, b):
    if method == "lsqr":
        raise ValueError(
            f"{who}: lsqr takes no preconditioner; precondition the normal equations instead: "
            "solve(A.N, A.H(b), method='cg', M=M, damp=damp)"
        )
    if not isinstance(M, Linop):
        if not callable(M):
            raise TypeError(f"{who}: M must be a Linop or a callable, got {type(M).__name__}")
        return  # its output shape is checked at its first application, before iterating
    if not _square(M):
        raise ShapeError(f"{who}: the preconditioner M = {M._name()} is not square")
    _check_shape(who, "b", b, "M", M, M.ishape)


def _check_devices(who, b, *ops):
    """An operator whose tensors all sit on one device other than b's cannot apply to it
    (one with tensors on several devices moves data itself, through ToDevice)."""
    for role, op in zip(("A", "M"), ops):
        if isinstance(op, Linop):
            devices = {t.device for t in tp.tree_leaves(op) if isinstance(t, torch.Tensor)}
            if len(devices) == 1 and b.device not in devices:
                raise DeviceError(
                    f"{who}: b is on {b.device} but {role} = {op._name()} has its tensors on "
                    f"{devices.pop()}; move one with fl.to"
                )


def _promoted(A, b):
    dtype, _ = operator_dtype_device(A) if isinstance(A, Linop) else (None, None)
    return b.dtype if dtype is None else torch.promote_types(b.dtype, dtype)


def _fmt(shape):
    return "(" + ", ".join(shape) + ")"


# ---- the static description of a solve ------------------------------------------------

_SLOT = object()  # where a tensor leaf goes back in


@dataclasses.dataclass(frozen=True, eq=False)
class _Tree:
    """How to rebuild an operator from its tensor leaves (a callable has none)."""

    spec: object
    fixed: tuple
    fn: Callable | None = None

    @staticmethod
    def of(op):
        if not isinstance(op, Linop):
            return _Tree(None, (), op), []
        leaves, spec = tp.tree_flatten(op)
        tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
        fixed = tuple(_SLOT if isinstance(t, torch.Tensor) else t for t in leaves)
        return _Tree(spec, fixed), tensors

    def build(self, tensors):
        if self.spec is None:
            return self.fn
        it = iter(tensors)
        return tp.tree_unflatten([next(it) if f is _SLOT else f for f in self.fixed], self.spec)


@dataclasses.dataclass(frozen=True, eq=False)
class _Hook:
    progress: bool
    callback: Callable | None


@dataclasses.dataclass(frozen=True, eq=False)
class _Problem:
    """Everything static about a solve: the method, its options, how to rebuild
    A and M from the tensor inputs, and (under vmap) which inputs are batched.

    ``batch`` is None for one problem; otherwise ``b`` (and ``x0``) carry
    ``batch_size`` problems along axis 0 and ``batch[k]`` says whether input
    ``k`` of ``(damp, *leaves)`` does too (an unbatched leaf is shared by all).
    ``method`` is one of METHODS or ``"normal_cg"``: CG on ``AᴴA + damp² I``,
    the adjoint system of lsqr.
    """

    method: str
    tol: object
    max_iter: int
    who: str
    a: _Tree
    m: object
    n_a: int
    hook: object = None
    batch: tuple | None = None
    batch_size: int | None = None

    def adjoint(self):
        """The problem of the adjoint (and tangent) system: the Hermitian ``G`` with
        ``G x = (the right-hand side)``; no progress bar or callback."""
        method = "normal_cg" if self.method == "lsqr" else self.method
        return dataclasses.replace(self, method=method, hook=None)


# ---- the operators of a problem --------------------------------------------------------


def _linops(problem, leaves):
    """``(A, M)`` rebuilt from the tensor leaves (callables as given)."""
    a = problem.a.build(leaves[: problem.n_a])
    m = problem.m.build(leaves[problem.n_a:]) if problem.m is not None else None
    return a, m


def _applies(problem, leaves, linops=None):
    """``(apply A, apply Aᴴ, apply M)`` as functions of a (batched) vector; ``linops``
    are ``(A, M)`` themselves when the caller has them (no rebuilding)."""
    A, M = linops if linops is not None else _linops(problem, leaves)
    fwd = A.apply if isinstance(A, Linop) else A
    adj = A.apply_adjoint if isinstance(A, Linop) else None
    pre = None if M is None else (M.apply if isinstance(M, Linop) else M)
    if problem.batch is None:
        return fwd, adj, pre
    flags = problem.batch[1:]
    a_dims = [0 if f else None for f in flags[: problem.n_a]]
    m_dims = [0 if f else None for f in flags[problem.n_a:]]
    a_leaves, m_leaves = leaves[: problem.n_a], leaves[problem.n_a:]
    fwd = _vmapped(problem.a, "apply", a_leaves, a_dims)
    adj = _vmapped(problem.a, "apply_adjoint", a_leaves, a_dims) if adj is not None else None
    if pre is not None:
        pre = _vmapped(problem.m, "apply", m_leaves, m_dims)
    return fwd, adj, pre


def _vmapped(tree, name, leaves, dims):
    """``v -> op.<name>(v)`` over a batch of vectors (and of operators, for batched leaves)."""

    def one(ls, v):
        op = tree.build(ls)
        return getattr(op, name)(v) if isinstance(op, Linop) else op(v)

    leaves, dims = list(leaves), list(dims)
    return lambda v: torch.func.vmap(one, in_dims=(dims, 0))(leaves, v)


def _system(problem, fwd, adj, damp):
    """The Hermitian operator of cg/minres/normal_cg: ``A (+ damp² I)`` or ``AᴴA (+ damp² I)``."""
    base = fwd if problem.method != "normal_cg" else (lambda v: adj(fwd(v)))
    if damp is None:
        return base
    d2 = damp * damp
    return lambda v: base(v) + bcast(d2, v) * v


def _residual(problem, x, b, damp, leaves):
    """``F(b, damp, θ)`` at the solution ``x``: zero there, so ``dx = -G⁻¹ dF``."""
    fwd, adj, _ = _applies(problem, leaves)
    if problem.method == "lsqr":
        r = adj(fwd(x) - b)
        return r if damp is None else r + bcast(damp * damp, x) * x
    return _system(problem, fwd, adj, damp)(x) - b


def _forward(problem, b, x0, damp, leaves, linops=None):
    """Run the solve (plain tensors: the transforms are unwrapped by now)."""
    who, batched = problem.who, problem.batch is not None
    if problem.tol:
        _require_finite(b, "b", who)
        if x0 is not None:
            _require_finite(x0, "x0", who)
    fwd, adj, pre = _applies(problem, leaves, linops)
    hook, close = _hook(problem)
    try:
        options = dict(max_iter=problem.max_iter, tol=problem.tol, batched=batched, hook=hook, who=who)
        if problem.method == "lsqr":
            return _lsqr(fwd, adj, b, x0, damp=damp, **options)
        system = _system(problem, fwd, adj, damp)
        if problem.method == "minres":
            return _minres(system, b, x0, M=pre, **options)
        # eager on the CPU, CG's scalars live on the host (the tensors here are plain)
        host = b.device.type == "cpu" and not torch.compiler.is_compiling()
        return _cg(system, b, x0, M=pre, host=host, **options)
    finally:
        close()


def _hook(problem):
    """``(hook, close)``: the per-iteration hook of progress/callback, or ``(None, no-op)``."""
    if problem.hook is None:
        return None, lambda: None
    bar = None
    if problem.hook.progress:
        try:
            from tqdm.auto import tqdm
        except ImportError as e:
            raise ImportError(f"{problem.who}: progress=True needs tqdm (pip install tqdm)") from e
        bar = tqdm(total=problem.max_iter, desc=problem.method, unit="it", leave=False)
    callback = problem.hook.callback

    def hook(i, x, residual):
        if callback is not None:
            callback(i, x, residual)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(residual=f"{float(residual.max()):.3e}", refresh=False)

    return hook, (bar.close if bar is not None else lambda: None)


def _solve(problem, linops, b, x0, damp, *leaves):
    """``_Solve.apply``, or the plain solve when there is nothing to differentiate or vmap.

    The shortcut is the check ``autograd.Function.apply`` makes itself; it
    keeps an inference solve free of the Function's overhead and lets
    ``torch.compile`` trace it whole (Dynamo does not trace a Function with a
    custom ``jvp``, nor one whose ``forward`` takes ``*args`` without autograd).
    """
    tensors = (b, x0, damp, *leaves)
    if not torch._C._are_functorch_transforms_active() and not (
        torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)
    ):
        with torch.no_grad():  # as the Function's forward: each small op skips autograd's bookkeeping
            return tuple(_forward(problem, b, x0, damp, leaves, linops))
    return _Solve.apply(problem, b, x0, damp, *leaves)


# ---- the autograd.Function --------------------------------------------------------------


class _Solve(torch.autograd.Function):
    """``(problem, b, x0, damp, *leaves) -> (x, iterations, residual_norm, converged)``."""

    @staticmethod
    def forward(problem, b, x0, damp, *leaves):
        return tuple(_forward(problem, b, x0, damp, leaves))

    @staticmethod
    def setup_context(ctx, inputs, output):
        problem, b, _, damp, *leaves = inputs
        x = output[0]
        ctx.problem = problem
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(x, b, damp, *leaves)
        ctx.save_for_forward(x, b, damp, *leaves)

    @staticmethod
    def backward(ctx, x_bar, *_):
        x, b, damp, *leaves = ctx.saved_tensors
        problem = ctx.problem
        wanted = _wanted(ctx.needs_input_grad, problem, b, damp, leaves)
        grads = [None] * (4 + len(leaves))
        if not wanted:
            return tuple(grads)
        lam = _Solve.apply(problem.adjoint(), x_bar, None, damp, *leaves)[0]
        if wanted == [1] and problem.method != "lsqr":
            grads[1] = lam  # b̄ = λ: no vjp needed
            return tuple(grads)
        _, pullback = torch.func.vjp(_residual_of(problem, x, b, damp, leaves, wanted),
                                     *[_input(k, b, damp, leaves) for k in wanted])
        for k, g in zip(wanted, pullback(-lam)):
            grads[k] = g
        return tuple(grads)

    @staticmethod
    def jvp(ctx, _, b_dot, x0_dot, damp_dot, *leaf_dots):
        x, b, damp, *leaves = ctx.saved_tensors
        problem = ctx.problem
        tangents = {1: b_dot, 3: damp_dot}
        tangents.update({4 + k: t for k, t in enumerate(leaf_dots) if k < problem.n_a})
        wanted = [k for k, t in sorted(tangents.items()) if t is not None]
        if not wanted:
            return torch.zeros_like(x), None, None, None
        f = _residual_of(problem, x, b, damp, leaves, wanted)
        _, f_dot = torch.func.jvp(f, tuple(_input(k, b, damp, leaves) for k in wanted),
                                  tuple(tangents[k] for k in wanted))
        x_dot = _Solve.apply(problem.adjoint(), -f_dot, None, damp, *leaves)[0]
        return x_dot, None, None, None

    @staticmethod
    def vmap(info, in_dims, problem, b, x0, damp, *leaves):
        problem, args, outer = _merge_batch(problem, info.batch_size, in_dims[1:], (b, x0, damp, *leaves))
        out = _Solve.apply(problem, *args)
        if outer is not None:  # split the merged axis back into (new, old)
            out = tuple(t.reshape((info.batch_size, outer) + t.shape[1:]) for t in out)
        return out, (0, 0, 0, 0)


def _wanted(needs, problem, b, damp, leaves):
    """The input positions (1: b, 3: damp, 4+k: A's leaves) that need a gradient."""
    wanted = [1] if needs[1] else []
    if damp is not None and needs[3]:
        wanted.append(3)
    for k in range(problem.n_a):
        t = leaves[k]
        if needs[4 + k] and (t.is_floating_point() or t.is_complex()):
            wanted.append(4 + k)
    return wanted


def _input(k, b, damp, leaves):
    return b if k == 1 else damp if k == 3 else leaves[k - 4]


def _residual_of(problem, x, b, damp, leaves, wanted):
    """``F`` as a function of the ``wanted`` inputs only (the others fixed)."""

    def f(*values):
        given = dict(zip(wanted, values))
        ls = [given.get(4 + k, t) for k, t in enumerate(leaves)]
        return _residual(problem, x, given.get(1, b), given.get(3, damp), ls)

    return f


def _merge_batch(problem, size, in_dims, args):
    """The problem and arguments of a batched solve, from the vmap rule's inputs.

    Batched inputs get their batch axis first; ``b`` and ``x0`` are always
    batched (expanded when vmap did not batch them). When the problem is
    already batched (nested vmap) the new axis and the old one merge into
    one; the third value is the old batch size (None for a first vmap).
    """
    old = problem.batch_size
    old_flags = (True, True) + (problem.batch or (False,) * (len(args) - 2))
    flags, out = [], []
    for k, (t, d, was) in enumerate(zip(args, in_dims, old_flags)):
        if t is None:
            flags.append(False)
            out.append(None)
            continue
        now = d is not None
        if now:
            t = t.movedim(d, 0)
        batched = now or was or k < 2
        if old is None:
            if batched and not now:
                t = t.expand((size,) + t.shape)
        elif batched:
            if not now:
                t = t.unsqueeze(0).expand((size,) + t.shape)
            elif not was:
                t = t.unsqueeze(1).expand((size, old) + t.shape[1:])
            t = t.reshape((size * old,) + t.shape[2:])
        flags.append(batched)
        out.append(t)
    merged = dataclasses.replace(problem, batch=tuple(flags[2:]), batch_size=size * (old or 1))
    return merged, out, old
