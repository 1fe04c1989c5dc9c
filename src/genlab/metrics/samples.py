"""Sample-size conventions of the feature metrics, and what falls short of them.

One rule per metric, each from the quantity the metric estimates (the numbers are module constants):

* **FID**: at least ``FID_SAMPLES_PER_DIM * D`` = 2·D samples in *each* set, D the feature dimension
  (Inception 2,048 -> 4,096; genlab's ``digits``/``mnist`` nets, D = 128 -> 256). The FID fits a D×D
  covariance: below D + 1 samples it is singular (rank <= n - 1; pytorch-fid's "at least 2,048 samples" for
  Inception is this bound), and the estimate's bias grows like D / n (Chong & Forsyth 2020: FID_n = FID_inf +
  c / n), so at n ≈ D it is still dominated by the sample size. Twice D is the floor used here; the number is
  only comparable with FIDs computed at the same n either way.
* **KID**: ``KID_SUBSETS`` = 100 subsets of ``KID_SUBSET_SIZE`` = 1,000 samples (Bińkowski et al. 2018, the
  defaults of torch-fidelity and clean-fid). KID is unbiased at any subset size, but when a set holds fewer
  samples than the subset size the subsets are capped at the set's size: every subset of that set is then the
  whole set, the subsets stop being independent draws, and the reported std understates the spread. Fewer
  than 100 subsets make the mean noisier than the convention's.
* **precision/recall** (k = 3) and **density/coverage** (k = 5): at least ``PRDC_SAMPLES_PER_K * k`` =
  100·k samples in each set (300 / 500). Each k-NN ball holds k of the other n - 1 samples, a fraction
  k / (n - 1) of the set; the references use 3 of 50,000 and 5 of 10,000 (<= 0.05 %). Above 1 % the balls
  stop being local and the scores drift toward 1 whatever the generator. ``n <= k`` is an error (no k-th
  neighbour), raised by :func:`~genlab.metrics.neighbours.kth_nn_sq_radii`.
"""
from __future__ import annotations

FID_SAMPLES_PER_DIM = 2
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PRDC_SAMPLES_PER_K = 100


def fid_min_samples(feature_dim: int) -> int:
    """Samples per set the FID convention needs for ``feature_dim``-dimensional features (2·D)."""
    return FID_SAMPLES_PER_DIM * int(feature_dim)


def sample_size_warnings(metrics, *, n_real: int, n_fake: int, feature_dim: int, kid_subsets: int = KID_SUBSETS,
                         kid_subset_size: int = KID_SUBSET_SIZE, pr_k: int = 3, dc_k: int = 5) -> list[str]:
    """One message per metric of ``metrics`` computed on fewer samples than its convention needs.

    Parameters
    ----------
    metrics : iterable of str
        Names as in :func:`~genlab.metrics.evaluate_features` (``"fid"``, ``"kid"``, ``"precision_recall"``,
        ``"density_coverage"``; others have no sample-size rule here).
    n_real, n_fake : int
        Samples in each set.
    feature_dim : int
        D of the features.
    kid_subsets, kid_subset_size, pr_k, dc_k
        The settings the metrics are computed with.

    Returns
    -------
    list of str
        Each names the metric, the number used and the number the convention needs (the rules are in this
        module's docstring); empty when every metric meets its convention.
    """
    metrics = set(metrics)
    n = min(n_real, n_fake)
    sets = f"{n_fake} generated / {n_real} real samples"
    out = []
    if "fid" in metrics and n < fid_min_samples(feature_dim):
        out.append(f"FID on {sets} of {feature_dim}-D features: the convention needs at least "
                   f"{fid_min_samples(feature_dim)} (2 x D) in each set (the covariance is singular below D + 1 "
                   f"and the bias grows like D/n); compare it only with FIDs at the same sample counts")
    if "kid" in metrics:
        if kid_subset_size > n:
            out.append(f"KID subsets of {n} samples ({sets}; requested {kid_subset_size}, convention "
                       f"{KID_SUBSET_SIZE}): subsets of the smaller set are the whole set, so its std understates "
                       f"the spread; use at least {kid_subset_size} samples per set")
        if kid_subsets < KID_SUBSETS:
            out.append(f"KID averaged over {kid_subsets} subsets; the convention is {KID_SUBSETS} "
                       f"(noisier mean and std)")
    for name, label, k in (("precision_recall", "precision/recall", pr_k), ("density_coverage", "density/coverage",
                                                                               dc_k)):
        if name in metrics and n < PRDC_SAMPLES_PER_K * k:
            out.append(f"{label} with k={k} on {sets}: the convention needs at least {PRDC_SAMPLES_PER_K * k} "
                       f"({PRDC_SAMPLES_PER_K} x k) in each set, or each k-NN ball holds over 1 % of the set and "
                       f"the scores drift toward 1")
    return out
