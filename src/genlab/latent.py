"""Latent-space maths, pure functions on vectors (numpy arrays or torch tensors; no model, no I/O).

Conventions (they change the pictures and the numbers):

* **linear interpolation** :func:`lerp`: ``z(t) = (1 - t) a + t b`` at ``t = 0, 1/(S-1), ..., 1``.
* **spherical interpolation** :func:`slerp`: the *direction* moves along the great circle from ``a/|a|`` to
  ``b/|b|`` at constant angular speed and the *norm* is interpolated linearly, ``|z(t)| = (1 - t)|a| + t|b|``.
  For unit vectors this is Shoemake's slerp. When the two vectors are (anti)parallel (angle within
  :data:`PARALLEL_EPS` rad of 0 or pi) or one is zero the great circle is undefined and ``slerp`` falls back to
  ``lerp``. Both return the endpoints exactly (``z(0) == a``, ``z(1) == b``).
* **traversal** :func:`traversal_codes`: code ``c + o * s_d e_d`` for offsets ``o`` in
  ``linspace(-span, span, steps)``, one latent dimension ``d`` at a time, all others fixed at ``c``.
* **arithmetic** :func:`code_arithmetic`: ``mean(A) - mean(B) + mean(C)`` over groups of codes.

:class:`genlab.apps.LatentExplorer` maps inputs to codes and codes to samples around these functions.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .errors import ConfigError, DataError

#: names of the interpolation methods (:func:`interpolator`)
METHODS = ("linear", "spherical")
#: angles (radians) this close to 0 or pi count as (anti)parallel: slerp falls back to lerp
PARALLEL_EPS = 1e-6


# ---------------------------------------------------------------------------- interpolation
#: most points on one interpolation path or traversal row: far beyond a readable figure, and a hostile 1e11
#: is a one-line error instead of an allocator failure
MAX_STEPS = 10_000


def check_steps(steps, what: str = "steps") -> int:
    """``steps`` as an int, or a ConfigError unless it is an integer in [2, :data:`MAX_STEPS`]."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 2 <= steps <= MAX_STEPS:
        raise ConfigError(f"{what} must be an integer in [2, {MAX_STEPS}] (the two endpoints at least), got "
                          f"{steps!r}")
    return int(steps)


def _pair(a, b, what: str) -> tuple[torch.Tensor, torch.Tensor, bool, torch.dtype | np.dtype]:
    """``a``, ``b`` as float64 tensors; whether to return torch; the output dtype."""
    is_torch = isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)
    ta = a.detach().cpu() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    tb = b.detach().cpu() if isinstance(b, torch.Tensor) else torch.as_tensor(np.asarray(b))
    if ta.shape != tb.shape:
        raise DataError(f"{what}: a and b must have the same shape, got {tuple(ta.shape)} and {tuple(tb.shape)}")
    if ta.ndim == 0:
        raise DataError(f"{what}: a and b must be vectors (D,) or rows (N, D), got scalars")
    if ta.dtype.is_complex or tb.dtype.is_complex:
        raise DataError(f"{what}: complex vectors are not supported; give real arrays")
    if is_torch:
        dt = torch.promote_types(ta.dtype, tb.dtype)
        out_dtype = dt if dt.is_floating_point else torch.get_default_dtype()
    else:
        dt = np.result_type(np.asarray(a).dtype, np.asarray(b).dtype)
        out_dtype = dt if dt.kind == "f" else np.dtype(np.float64)
    ta, tb = ta.to(torch.float64), tb.to(torch.float64)
    if not (torch.isfinite(ta).all() and torch.isfinite(tb).all()):
        raise DataError(f"{what}: a and b must be finite (no NaN or inf)")
    return ta, tb, is_torch, out_dtype


def _finish(out: torch.Tensor, a, b, is_torch: bool, out_dtype, device):
    """Cast back to the caller's type and put the exact endpoints in place."""
    if is_torch:
        res = out.to(out_dtype)
        res[0] = torch.as_tensor(a).to(res)
        res[-1] = torch.as_tensor(b).to(res)
        return res.to(device)
    res = out.numpy().astype(out_dtype)
    res[0] = np.asarray(a, dtype=out_dtype)
    res[-1] = np.asarray(b, dtype=out_dtype)
    return res


def _device(a, b):
    for v in (a, b):
        if isinstance(v, torch.Tensor):
            return v.device
    return torch.device("cpu")


def lerp(a, b, steps: int):
    """Linear interpolation ``(1 - t) a + t b`` at ``steps`` evenly spaced ``t`` from 0 to 1.

    Parameters
    ----------
    a, b : array-like or Tensor
        Same shape: a vector ``(D,)`` or rows ``(N, D)`` (any shape works: the formula is element-wise).
    steps : int
        Number of points, >= 2; the first is ``a`` and the last is ``b``, exactly.

    Returns
    -------
    ndarray or Tensor, shape ``(steps, *a.shape)``
        A Tensor (on ``a``'s device) if either input is one, else a numpy array; floating dtype of the
        inputs (float64 for integer inputs, torch's default dtype for integer tensors).
    """
    steps = check_steps(steps)
    ta, tb, is_torch, out_dtype = _pair(a, b, "lerp")
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64).view(steps, *([1] * ta.ndim))  # (S, 1, ...)
    out = ta.unsqueeze(0) * (1 - t) + tb.unsqueeze(0) * t  # (S, *shape)
    return _finish(out, a, b, is_torch, out_dtype, _device(a, b))


def slerp(a, b, steps: int):
    """Spherical interpolation along the last axis (per row), with linearly interpolated norms.

    With ``theta`` the angle between ``a`` and ``b`` (row by row) and ``u_a = a/|a|``, ``u_b = b/|b|``::

        z(t) = ((1 - t)|a| + t|b|) * (sin((1 - t) theta) u_a + sin(t theta) u_b) / sin(theta)

    so the direction moves at constant angular speed on the great circle and ``|z(t)|`` is linear in
    ``t`` (for unit vectors this is Shoemake's slerp and every point has unit norm). Rows whose vectors are
    (anti)parallel (``theta`` within 1e-6 rad of 0 or pi) or zero fall back to :func:`lerp`. ``theta`` is
    computed as ``2 atan2(|u_a - u_b|, |u_a + u_b|)`` in float64 (accurate at small and large angles).

    Parameters
    ----------
    a, b : array-like or Tensor
        Same shape, a vector ``(D,)`` or rows ``(..., D)``.
    steps : int
        Number of points, >= 2; the first is ``a`` and the last is ``b``, exactly.

    Returns
    -------
    ndarray or Tensor, shape ``(steps, *a.shape)``
        Same type rules as :func:`lerp`.
    """
    steps = check_steps(steps)
    ta, tb, is_torch, out_dtype = _pair(a, b, "slerp")
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64).view(steps, *([1] * ta.ndim))  # (S, 1, ...)
    lin = ta.unsqueeze(0) * (1 - t) + tb.unsqueeze(0) * t  # (S, ..., D)
    na = ta.norm(dim=-1, keepdim=True)  # (..., 1)
    nb = tb.norm(dim=-1, keepdim=True)
    ua = ta / torch.where(na > 0, na, torch.ones_like(na))
    ub = tb / torch.where(nb > 0, nb, torch.ones_like(nb))
    theta = 2 * torch.atan2((ua - ub).norm(dim=-1, keepdim=True), (ua + ub).norm(dim=-1, keepdim=True))  # (..., 1)
    ok = (na > 0) & (nb > 0) & (theta > PARALLEL_EPS) & (theta < math.pi - PARALLEL_EPS)
    sin = torch.where(ok, torch.sin(theta), torch.ones_like(theta))
    direction = (torch.sin((1 - t) * theta) * ua + torch.sin(t * theta) * ub) / sin  # (S, ..., D), unit norm
    sph = ((1 - t) * na + t * nb) * direction
    out = torch.where(ok, sph, lin)
    return _finish(out, a, b, is_torch, out_dtype, _device(a, b))


def interpolator(method: str):
    """:func:`lerp` for ``"linear"``, :func:`slerp` for ``"spherical"``, else a ConfigError."""
    if method == "linear":
        return lerp
    if method == "spherical":
        return slerp
    raise ConfigError(f"unknown interpolation method {method!r}; use 'linear' or 'spherical'")


# ---------------------------------------------------------------------------- traversal and arithmetic
def check_span(span, what: str = "span") -> float:
    """``span`` as a float, or a ConfigError unless it is a finite number > 0."""
    if isinstance(span, bool) or not isinstance(span, numbers.Real) or not math.isfinite(span) or span <= 0:
        raise ConfigError(f"{what} must be a finite number > 0 (in std units), got {span!r}")
    return float(span)


def traversal_codes(center, scale, dims, *, span: float = 3.0, steps: int = 7) -> torch.Tensor:
    """Codes that vary one latent dimension at a time around ``center``.

    Row ``i`` varies dimension ``d = dims[i]``: ``codes[i, j] = center`` except
    ``codes[i, j, d] = center[d] + o_j * scale[d]`` with ``o = linspace(-span, span, steps)``.

    Parameters
    ----------
    center, scale : array-like or Tensor of shape (L,)
        The centre code and the unit of each dimension (e.g. the prior std 1, or the std of training codes).
    dims : sequence of int
        Dimensions to vary, each in ``[0, L)``.
    span : float
        Largest offset, in ``scale`` units (> 0).
    steps : int
        Offsets per dimension (>= 2), the first ``-span`` and the last ``+span``.

    Returns
    -------
    Tensor of shape (len(dims), steps, L), float32
    """
    steps = check_steps(steps)
    span = check_span(span)
    c = torch.as_tensor(np.asarray(center, dtype=np.float32) if not isinstance(center, torch.Tensor) else center)
    s = torch.as_tensor(np.asarray(scale, dtype=np.float32) if not isinstance(scale, torch.Tensor) else scale)
    c, s = c.detach().cpu().to(torch.float32), s.detach().cpu().to(torch.float32)
    if c.ndim != 1 or s.shape != c.shape:
        raise DataError(f"traversal_codes: center and scale must be vectors of one length (L,), got "
                        f"{tuple(c.shape)} and {tuple(s.shape)}")
    dims = [int(d) for d in dims]
    bad = [d for d in dims if not 0 <= d < len(c)]
    if bad or not dims:
        raise ConfigError(f"dims must be latent dimensions in [0, {len(c) - 1}], got {bad or dims}")
    offsets = torch.linspace(-span, span, steps)  # (S,)
    codes = c.repeat(len(dims), steps, 1)  # (K, S, L)
    for i, d in enumerate(dims):
        codes[i, :, d] = c[d] + offsets * s[d]
    return codes


def code_arithmetic(a, b, c):
    """``mean(a) - mean(b) + mean(c)``: each argument is one code ``(L,)`` or a group of codes ``(N, L)`` whose
    mean is taken first (DCGAN's averaged "smiling woman - neutral woman + neutral man"). Returns ``(L,)`` in the
    type of ``a`` (Tensor or numpy array)."""
    groups = []
    for v, name in ((a, "a"), (b, "b"), (c, "c")):
        t = v.detach().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
        t = t.to(torch.float64)
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or len(t) == 0:
            raise DataError(f"code_arithmetic: {name} must be a code (L,) or codes (N, L), got shape {tuple(t.shape)}")
        groups.append(t.mean(0))
    if not groups[0].shape == groups[1].shape == groups[2].shape:
        raise DataError(f"code_arithmetic: codes of different lengths {[tuple(g.shape) for g in groups]}")
    z = groups[0] - groups[1] + groups[2]  # (L,)
    if isinstance(a, torch.Tensor):
        return z.to(a.dtype if a.dtype.is_floating_point else torch.get_default_dtype())
    return z.numpy()
