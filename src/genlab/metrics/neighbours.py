"""k-NN manifold metrics: precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al. 2020).

Distances are computed block by block and never as a full matrix.

Memory bound: besides the two input arrays (kept in their own dtype, not copied), at any time
at most one ``row_chunk x D`` and one ``col_chunk x D`` slice converted to the compute dtype and
at most 4 blocks of ``row_chunk x (col_chunk + k)`` (distances, the running top-k concatenation,
comparison masks) are alive. With the defaults (4096 x 4096, float64, D = 2048) that is
4 x 128 MiB + 2 x 64 MiB ~= 640 MiB whatever N is, plus O(N) vectors (radii, top-k lists, flags).

Numerics: squared Euclidean distances as ``||a||^2 + ||b||^2 - 2 a.b`` with a torch matmul,
clamped at 0; float64 by default (``dtype=torch.float32`` is ~2x faster on CPU but rounding
can flip near-tie memberships). All comparisons are on squared distances (equivalent to
comparing distances, without the extra ties that rounding ``sqrt`` could create).
"""
from __future__ import annotations

from typing import Any, Iterator

import torch

from ..errors import ConfigError
from ._common import as_feature_tensor, check_positive_int, check_same_dim

DEFAULT_CHUNK = 4096


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, size):
        yield lo, min(lo + size, n)


def _prepare(x: Any, name: str, device) -> torch.Tensor:
    return as_feature_tensor(x, name, dtype=None).to(device)


class _Blocks:
    """Squared-distance blocks between rows of ``a`` and rows of ``b``, converted chunk by chunk."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, row_chunk: int, col_chunk: int):
        self.a, self.b, self.dtype = a, b, dtype
        self.row_chunk, self.col_chunk = row_chunk, col_chunk
        self.a_sq = self._sq_norms(a)  # (Na,)
        self.b_sq = self.a_sq if b is a else self._sq_norms(b)  # (Nb,)

    def _sq_norms(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape[0], dtype=self.dtype, device=x.device)
        for lo, hi in _chunks(x.shape[0], self.row_chunk):
            c = x[lo:hi].to(self.dtype)
            out[lo:hi] = (c * c).sum(dim=1)
        return out

    def rows(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        for lo, hi in _chunks(self.a.shape[0], self.row_chunk):
            yield lo, hi, self.a[lo:hi].to(self.dtype)

    def cols(self, r_lo: int, r_hi: int, ra: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield ``(c_lo, c_hi, D)`` with ``D[i, j] = ||a_{r_lo+i} - b_{c_lo+j}||^2``, (R, C)."""
        for lo, hi in _chunks(self.b.shape[0], self.col_chunk):
            cb = self.b[lo:hi].to(self.dtype)
            d = torch.addmm(self.b_sq[lo:hi].unsqueeze(0), ra, cb.T, beta=1.0, alpha=-2.0)  # (R, C)
            d.add_(self.a_sq[r_lo:r_hi].unsqueeze(1)).clamp_(min=0.0)
            yield lo, hi, d


def pairwise_sq_distances(a: Any, b: Any, *, row_chunk: int = DEFAULT_CHUNK, col_chunk: int = DEFAULT_CHUNK,
                          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Full (Na, Nb) squared-distance matrix assembled from the same blocks (for tests / small sets)."""
    ta, tb = as_feature_tensor(a, "a", dtype=None), as_feature_tensor(b, "b", dtype=None)
    check_same_dim(ta, tb, "a", "b")
    blocks = _Blocks(ta, tb, dtype, row_chunk, col_chunk)
    out = torch.empty(ta.shape[0], tb.shape[0], dtype=dtype)
    for r_lo, r_hi, ra in blocks.rows():
        for c_lo, c_hi, d in blocks.cols(r_lo, r_hi, ra):
            out[r_lo:r_hi, c_lo:c_hi] = d
    return out


def knn_sq_radii(x: Any, ks: tuple[int, ...] | list[int], *, row_chunk: int = DEFAULT_CHUNK,
                 col_chunk: int = DEFAULT_CHUNK, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu") -> dict[int, torch.Tensor]:
    """Squared distance from each row of ``x`` to its k-th nearest *other* row, for several k in one pass.

    Returns ``{k: (N,) tensor}``. The distance matrix is symmetric, so only the blocks on and above the
    diagonal are computed (about half the multiply-adds of a full pass): an off-diagonal block updates the
    running top-``max(ks)`` lists of its rows and, transposed, of its columns. The point itself is excluded by
    index (its own entry is set to +inf), so duplicates of a point count as neighbours at distance 0 — the same
    as the references' "(k+1)-th smallest including self". Memory: the running lists are (N, max(ks)); the
    block bound of the module docstring, with ``col_chunk`` = ``row_chunk`` (one chunk size for both sides).
    """
    t = _prepare(x, "features", device)
    n = t.shape[0]
    ks = tuple(check_positive_int(k, "k") for k in ks)
    kmax = max(ks)
    if kmax >= n:
        raise ConfigError(f"k={kmax} nearest neighbours need at least k+1={kmax + 1} samples, got {n}; "
                          f"lower k or pass more samples")
    size = min(row_chunk, col_chunk)
    bounds = list(_chunks(n, size))
    sq = _Blocks(t, t, dtype, size, size).a_sq  # (N,)
    best = torch.full((n, kmax), float("inf"), dtype=dtype, device=t.device)  # running k smallest per row

    def fold(lo: int, hi: int, d: torch.Tensor) -> None:  # d: (hi - lo, C) candidates for rows lo:hi
        cand = torch.cat([best[lo:hi], d], dim=1)
        best[lo:hi] = torch.topk(cand, kmax, dim=1, largest=False, sorted=True).values

    with torch.inference_mode():
        for i, (r_lo, r_hi) in enumerate(bounds):
            ra = t[r_lo:r_hi].to(dtype)
            for c_lo, c_hi in bounds[i:]:
                cb = ra if c_lo == r_lo else t[c_lo:c_hi].to(dtype)
                d = torch.addmm(sq[c_lo:c_hi].unsqueeze(0), ra, cb.T, beta=1.0, alpha=-2.0)  # (R, C)
                d.add_(sq[r_lo:r_hi].unsqueeze(1)).clamp_(min=0.0)
                if c_lo == r_lo:  # diagonal block: exclude each point itself
                    d.fill_diagonal_(float("inf"))
                    fold(r_lo, r_hi, d)
                else:
                    fold(r_lo, r_hi, d)
                    fold(c_lo, c_hi, d.T)
    return {k: best[:, k - 1].clone() for k in ks}


def kth_nn_sq_radii(x: Any, k: int, *, row_chunk: int = DEFAULT_CHUNK, col_chunk: int = DEFAULT_CHUNK,
                    dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Squared distance from each row of ``x`` to its k-th nearest *other* row, (N,) (see :func:`knn_sq_radii`)."""
    return knn_sq_radii(x, (k,), row_chunk=row_chunk, col_chunk=col_chunk, dtype=dtype, device=device)[k]


def _check_pair(real: Any, fake: Any, device) -> tuple[torch.Tensor, torch.Tensor]:
    r = _prepare(real, "real", device)
    f = _prepare(fake, "fake", device)
    check_same_dim(r, f, "real", "fake")
    return r, f


def precision_recall(real: Any, fake: Any, *, k: int = 3, row_chunk: int = DEFAULT_CHUNK,
                     col_chunk: int = DEFAULT_CHUNK, dtype: torch.dtype = torch.float64,
                     device: str | torch.device = "cpu") -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Conventions that change the number:

    * each real sample's radius is the Euclidean distance to its k-th nearest neighbour among the
      *other* real samples (default k=3, the paper's); same for fake samples among fakes;
    * precision = fraction of fake samples inside at least one real ball, recall = fraction of
      real samples inside at least one fake ball; membership is ``dist <= radius`` (inclusive, as
      the official implementation);
    * distances as in the module docstring (float64 by default, chunked; memory bound there).

    Returns
    -------
    (precision, recall) : (float, float)
    """
    r, f = _check_pair(real, fake, device)
    k = check_positive_int(k, "k")
    radii = dict(row_chunk=row_chunk, col_chunk=col_chunk, dtype=dtype)
    out = _cross_pass(r, f, pr=(knn_sq_radii(r, (k,), **radii, device=r.device)[k],
                                knn_sq_radii(f, (k,), **radii, device=f.device)[k]), **radii)
    return out["precision"], out["recall"]


def density_coverage(real: Any, fake: Any, *, k: int = 5, row_chunk: int = DEFAULT_CHUNK,
                     col_chunk: int = DEFAULT_CHUNK, dtype: torch.dtype = torch.float64,
                     device: str | torch.device = "cpu") -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020).

    Conventions that change the number:

    * real radii = distance to the k-th nearest *other* real sample (default k=5, the paper's);
    * density = ``(1 / (k * N_fake)) * sum_j #{i : dist(real_i, fake_j) < radius_i}``;
      coverage = fraction of real samples whose nearest fake sample is ``< radius_i`` away;
      both use the strict ``<`` of the authors' reference code (``prdc``), unlike
      :func:`precision_recall`'s ``<=``;
    * distances as in the module docstring (float64 by default, chunked; memory bound there).

    Returns
    -------
    (density, coverage) : (float, float)
    """
    r, f = _check_pair(real, fake, device)
    k = check_positive_int(k, "k")
    radii = dict(row_chunk=row_chunk, col_chunk=col_chunk, dtype=dtype)
    out = _cross_pass(r, f, dc=(knn_sq_radii(r, (k,), **radii, device=r.device)[k], k), **radii)
    return out["density"], out["coverage"]


def prdc(real: Any, fake: Any, *, pr_k: int = 3, dc_k: int = 5, row_chunk: int = DEFAULT_CHUNK,
         col_chunk: int = DEFAULT_CHUNK, dtype: torch.dtype = torch.float64,
         device: str | torch.device = "cpu") -> dict[str, float]:
    """Precision, recall, density and coverage in one pass (the same numbers as :func:`precision_recall` and
    :func:`density_coverage`, with their conventions).

    The real radii for both k come from one symmetric pass (:func:`knn_sq_radii`), the fake radii from another,
    and one pass over the real-fake blocks updates all four quantities: about two full distance passes where
    calling the two functions costs five. Returns ``{"precision", "recall", "density", "coverage"}``.
    """
    r, f = _check_pair(real, fake, device)
    pr_k, dc_k = check_positive_int(pr_k, "pr_k"), check_positive_int(dc_k, "dc_k")
    radii = dict(row_chunk=row_chunk, col_chunk=col_chunk, dtype=dtype)
    r_rad = knn_sq_radii(r, (pr_k, dc_k), **radii, device=r.device)  # both k from one pass
    f_rad = knn_sq_radii(f, (pr_k,), **radii, device=f.device)[pr_k]  # (Nf,)
    return _cross_pass(r, f, pr=(r_rad[pr_k], f_rad), dc=(r_rad[dc_k], dc_k), **radii)


def _cross_pass(r: torch.Tensor, f: torch.Tensor, *, pr: tuple | None = None, dc: tuple | None = None,
                row_chunk: int, col_chunk: int, dtype: torch.dtype) -> dict[str, float]:
    """One pass over the real-fake distance blocks. ``pr=(real radii, fake radii)`` (squared, k-th neighbour)
    gives ``precision``/``recall`` (membership ``<=``); ``dc=(real radii, k)`` gives ``density``/``coverage``
    (strict ``<``)."""
    fake_in = torch.zeros(f.shape[0], dtype=torch.bool, device=f.device)
    real_in = torch.zeros(r.shape[0], dtype=torch.bool, device=r.device)
    count = torch.zeros(f.shape[0], dtype=torch.float64, device=f.device)
    nearest_fake = torch.full((r.shape[0],), float("inf"), dtype=dtype, device=r.device)
    blocks = _Blocks(r, f, dtype, row_chunk, col_chunk)
    with torch.inference_mode():
        for r_lo, r_hi, ra in blocks.rows():
            for c_lo, c_hi, d in blocks.cols(r_lo, r_hi, ra):  # d: (R, C) squared distances
                if pr is not None:
                    fake_in[c_lo:c_hi] |= (d <= pr[0][r_lo:r_hi].unsqueeze(1)).any(dim=0)
                    real_in[r_lo:r_hi] |= (d <= pr[1][c_lo:c_hi].unsqueeze(0)).any(dim=1)
                if dc is not None:
                    count[c_lo:c_hi] += (d < dc[0][r_lo:r_hi].unsqueeze(1)).sum(dim=0).double()
                    nearest_fake[r_lo:r_hi] = torch.minimum(nearest_fake[r_lo:r_hi], d.min(dim=1).values)
    out = {}
    if pr is not None:
        out.update(precision=float(fake_in.double().mean()), recall=float(real_in.double().mean()))
    if dc is not None:
        out.update(density=float(count.sum() / (dc[1] * f.shape[0])),
                   coverage=float((nearest_fake < dc[0]).double().mean()))
    return out
