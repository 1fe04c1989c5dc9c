"""Imputation of missing entries (NaN) with an autoencoder or VAE, as a scikit-learn transformer.

>>> from genlab.apps import Imputer
>>> imp = Imputer(model="vae", epochs=200).fit(X_with_nan)      # tabular (N, D) or images with NaN pixels
>>> X_filled = imp.transform(X_with_nan)                         # observed entries returned bit for bit
>>> make_pipeline(Imputer(), Ridge()).fit(X_with_nan, y)          # works inside sklearn Pipelines

How it works:

* **Mask-aware training.** ``fit`` trains the model on the data with its holes: missing entries enter the
  encoder as 0 (the column mean of standardised tabular data; black for images) and are left out of the
  loss (the AE's mean squared / BCE error is the mean over the observed entries; the VAE's ``log p(x|z)`` is
  the sum over the observed entries, i.e. ``log p(x_obs|z)``). See ``supports_missing`` on the models.
* **Importance-weighted filling (MIWAE, the default for VAEs).** Mattei & Frellsen (2019): the VAE is trained
  on the importance-weighted bound of ``log p(x_obs)`` (``iw_samples`` importance samples, the MIWAE bound;
  set on tabular data by default), and ``transform`` fills each row with the self-normalised importance
  estimate of ``E[x_mis | x_obs]``: draw ``z_1..z_K ~ q(z | x_obs)``, weigh ``w_k ∝ p(x_obs|z_k) p(z_k) /
  q(z_k|x_obs)`` and return ``sum_k w_k E[x_mis | z_k]`` (``n_samples`` = K; seeded by ``random_state`` so
  ``transform`` is repeatable). :meth:`Imputer.multiple_imputation` draws ``m`` imputations from the same
  weights (sampling importance resampling, then ``x_mis ~ p(x_mis | z)``) and returns their between-imputation
  variance.
* **Gaussian component (tabular data).** ``fit`` also fits ``N(mean, cov)`` to the standardised rows with their
  holes by EM (:func:`gaussian_em`); the fill is ``gaussian_weight * E_gauss[x_mis | x_obs] + (1 -
  gaussian_weight) * (the model's fill)`` (default 0.75; chosen on validation entries, bench/impute_select.py).
  :meth:`Imputer.multiple_imputation` then draws each imputation of a row from the Gaussian conditional with
  probability ``gaussian_weight``, from the model otherwise.
* **Images with large holes** (``mask_copies``): ``fit`` adds copies of the training images with a random half
  missing, so the encoder learns ``q(z | x_obs)`` for such inputs.
* **Iterative filling** (``method="iterative"``; the only route for autoencoders). ``transform`` starts every missing entry at 0 in model space, the value missing
  entries had in training (the column mean of the model's training rows for tabular data, black for
  images), then ``n_iter`` times: reconstruct (the VAE's decoder mean at the posterior mean ``z = mu(x)``, so
  the output is deterministic) and replace only the missing entries by the reconstruction, clipped to the
  feature's observed range in the ``fit`` data (``feature_min_``, ``feature_max_``). Observed entries are
  copied from the input, never recomputed. More rounds are not better: each round feeds the model inputs
  unlike its training inputs (no zeros where entries are missing), and the fills drift (see the docs page).
* Units: tabular data is standardised with the model's training statistics (NaN-aware) and returned in
  raw units; images (NaN marks missing pixels; floats in [0, 1]) are returned in [0, 1] in their layout.
  The output keeps a float input's dtype (float32 stays float32); other inputs come back as float64.

Errors (one line, :class:`~genlab.errors.DataError`): a feature with no observed value in ``fit`` (named),
a sample shape different from ``fit``'s, infinite values, non-numeric data.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data import TensorDataset
from ..data.files import dataset_from_arrays, images_from_array
from ..errors import ConfigError, DataError
from ._base import ModelTransformer, as_dataset, restore_layout

log = logging.getLogger(__name__)

METHODS = ("auto", "importance", "iterative")
#: importance samples of the MIWAE training bound set on tabular data (Mattei & Frellsen 2019 used 20)
IW_SAMPLES = 20
#: MLP widths of the tabular MIWAE's encoder and decoder (the generic default for <= 64 columns is [64, 32]);
#: chosen on validation entries carved from the observed ones with selection masks (bench/impute_select.py,
#: seed 100) and on scikit-learn's wine table, never on the bench's scored entries
MIWAE_HIDDEN = (128, 128)
#: weight of the Gaussian component in the tabular fill (``gaussian_weight``); chosen on validation entries
#: carved from the observed ones (bench/impute_select.py, seeds 100-101, never the bench's scored entries)
GAUSSIAN_WEIGHT = 0.75
#: ridge added to the Gaussian component's covariance at every EM step (standardised units: a variance floor)
GAUSSIAN_RIDGE = 1e-3
#: most importance samples per row (``n_samples``) and reconstruct-and-replace rounds (``n_iter``): bounds far above
#: any useful value (default 1000 and 2), so that a hostile size (1e11) is a one-line error and not an endless fill
MAX_N_SAMPLES = 1_000_000
MAX_N_ITER = 10_000
#: masked copies of each training image (``mask_copies``); chosen on a validation split of mnist5k's training
#: images (bench/impute_select.py --images), never on the bench's test images
MASK_COPIES = 1
#: the Gaussian component is fitted on tabular data with at most this many columns (its EM solves D x D systems)
GAUSSIAN_MAX_FEATURES = 100


@dataclass
class MultipleImputation:
    """Result of :meth:`Imputer.multiple_imputation`: ``imputations`` ``(m, *X.shape)``, their ``mean`` and
    ``between_variance`` (variance over the ``m`` draws, ``ddof=1``; Rubin's between-imputation variance ``B``),
    both shaped like ``X``."""

    imputations: np.ndarray
    mean: np.ndarray
    between_variance: np.ndarray


def missing_dataset(X, y=None, *, name: str = "X") -> TensorDataset:
    """A :class:`TensorDataset` with ``allow_missing=True`` from ``X`` whose NaN entries are missing values.

    Tabular ``(N, D)`` arrays keep their NaN; image arrays (``(N, H, W)``, ``(N, C, H, W)`` or channels-last
    floats in [0, 1]) may hold NaN pixels too (the observed ones are checked as usual)."""
    if isinstance(X, TensorDataset):
        ds = X
    else:
        a = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        yy = None if y is None else (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y))
        if a.ndim in (3, 4) and a.dtype.kind == "f" and np.isnan(a).any():
            nan = np.isnan(a)
            ds = dataset_from_arrays(np.where(nan, 0.0, a).astype(a.dtype), yy, name)
            hole = images_from_array(nan, name).bool()  # (N, C, H, W), same layout handling as the pixels
            x = ds.x.masked_fill(hole, float("nan"))
            return TensorDataset(x, ds.y, norm=ds.norm, name=ds.name, classes=ds.classes, allow_missing=True)
        ds = as_dataset(a, yy, name=name, allow_nan=True)
    if ds.allow_missing:
        return ds
    return TensorDataset(ds.x, ds.y, norm=ds.norm, name=ds.name, classes=ds.classes, allow_missing=True)


def _masked_systems(x: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the covariance restricted to its observed entries, padded with the identity on the missing
    ones: ``P = O S O + (I - O)`` ``(B, D, D)`` (``O = diag(observed)``), and the observed mask ``(B, D)``."""
    obs = (~torch.isnan(x)).to(cov.dtype)  # (B, D)
    p = obs.unsqueeze(2) * cov * obs.unsqueeze(1) + torch.diag_embed(1.0 - obs)  # (B, D, D)
    return p, obs


def gaussian_conditional(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, *, rows: int = 0,
                         cond_cov: str = "full"):
    """Conditional of the missing entries (NaN) of each row of ``x`` ``(N, D)`` under ``N(mean, cov)``.

    Returns ``(cond_mean (N, D), cond_cov (N, D, D), loglik (N,))`` in float64: ``cond_mean`` is
    ``mean_m + S_mo S_oo^-1 (x_o - mean_o)`` at the missing entries and ``x`` at the observed ones;
    ``cond_cov`` is ``S_mm - S_mo S_oo^-1 S_om`` on the missing block and 0 elsewhere; ``loglik`` is
    ``log N(x_o; mean_o, S_oo)``. ``rows``: rows per batched solve (0: sized to about 4M floats).
    ``cond_cov``: ``"full"`` as above, ``"sum"`` its sum over the rows ``(D, D)`` (what EM needs), ``"none"``
    ``None`` (the fill needs only the mean; saves ``N x D x D`` floats)."""
    x = x.double()
    mean, cov = mean.double(), cov.double()
    n, d = x.shape
    rows = rows or max(1, min(n, (1 << 22) // max(1, d * d)))
    cm, cc, ll = [], [], []
    for xb in x.split(rows):
        p, obs = _masked_systems(xb, cov)  # (B, D, D), (B, D)
        r = torch.nan_to_num(xb - mean) * obs  # (B, D) centred observed values, 0 where missing
        chol = torch.linalg.cholesky(p)
        y = torch.cholesky_solve(r.unsqueeze(2), chol).squeeze(2)  # (B, D) S_oo^-1 r_o, 0 at missing entries
        cm.append(torch.where(obs.bool(), xb, mean + y @ cov))  # S symmetric: (S y)_m = S_mo S_oo^-1 r_o
        if cond_cov != "none":
            so = cov.unsqueeze(0) * obs.unsqueeze(2)  # (B, D, D) rows of S at the observed entries (O S)
            q = torch.cholesky_solve(so, chol)  # (B, D, D) P^-1 O S
            miss = 1.0 - obs
            c = (cov - so.transpose(1, 2) @ q) * miss.unsqueeze(2) * miss.unsqueeze(1)
            cc.append(c if cond_cov == "full" else c.sum(0, keepdim=True))
        logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)  # log det S_oo (the I block adds 0)
        ll.append(-0.5 * ((r * y).sum(1) + logdet + obs.sum(1) * math.log(2 * math.pi)))
    if cond_cov == "none":
        return torch.cat(cm), None, torch.cat(ll)
    return torch.cat(cm), (torch.cat(cc) if cond_cov == "full" else torch.cat(cc).sum(0)), torch.cat(ll)


def gaussian_em(x: torch.Tensor, *, max_iter: int = 200, tol: float = 1e-6, ridge: float = GAUSSIAN_RIDGE):
    """Maximum-likelihood ``N(mean, cov)`` of rows with missing entries (NaN), by EM (Dempster, Laird & Rubin
    1977; Little & Rubin 2002, section 11.2), ``ridge`` added to the covariance's diagonal at every M step.

    ``x`` ``(N, D)`` -> ``(mean (D,), cov (D, D))`` in float64. Starts from the observed means and variances;
    stops after ``max_iter`` steps or when the mean log-likelihood of the observed entries gains less than
    ``tol`` nats per row."""
    x = x.double()
    n, d = x.shape
    mean = torch.nan_to_num(torch.nanmean(x, 0))
    var = torch.nan_to_num(torch.nanmean((x - mean) ** 2, 0), nan=1.0)
    cov = torch.diag(var + ridge)
    prev = -math.inf
    for it in range(max_iter):
        cm, cc, ll = gaussian_conditional(x, mean, cov, cond_cov="sum")  # E step: E[x | x_o], sum Cov[x_m | x_o]
        mean = cm.mean(0)
        dev = cm - mean
        cov = (dev.T @ dev + cc) / n + ridge * torch.eye(d, dtype=torch.float64)  # M step
        cur = float(ll.mean())
        if cur - prev < tol:
            break
        prev = cur
    log.info("gaussian_em: %d steps, mean log-likelihood of the observed entries %.4f", it + 1, prev)
    return mean, cov


def with_half_masked_copies(ds: TensorDataset, copies: int, seed: int) -> TensorDataset:
    """``ds`` (images ``(N, C, H, W)``) followed by ``copies`` copies of every image, each with one half (top,
    bottom, left or right, drawn uniformly per image and copy) set missing (NaN, on top of its own holes).

    Training on them teaches the encoder ``q(z | x_obs)`` for images with a large hole, which a model trained
    on complete images never meets (its importance weights then start from a poor proposal)."""
    g = torch.Generator().manual_seed(int(seed))
    x = ds.x  # (N, C, H, W)
    n, _, h, w = x.shape
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    # the whole result is allocated first: a size too large for memory fails here, at once (one line), not
    # part-way through filling copy after copy (the kernel's kill)
    from ..io.memory import check_fits, refuse_out_of_memory
    what, fix = f"{copies:,} half-masked copies of {n:,} images", "lower mask_copies (--mask-copies)"
    check_fits((copies + 1) * x.numel() * x.element_size(), what, fix)
    with refuse_out_of_memory(what, fix):
        out = torch.empty(((copies + 1) * n, *x.shape[1:]), dtype=x.dtype)
    out[:n] = x
    for i in range(1, copies + 1):
        side = torch.randint(0, 4, (n, 1, 1), generator=g)  # 0 top, 1 bottom, 2 left, 3 right
        hide = torch.where(side == 0, rows < h // 2, torch.where(side == 1, rows >= h // 2,
                           torch.where(side == 2, cols < w // 2, cols >= w // 2)))  # (N, H, W)
        out[i * n:(i + 1) * n] = x.masked_fill(hide.unsqueeze(1), float("nan"))
    y = None if ds.y is None else ds.y.repeat(copies + 1)
    return TensorDataset(out, y, norm=ds.norm, name=ds.name, classes=ds.classes, allow_missing=True)


def _feature_name(index: int, shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return f"column {index}"
    c, h, w = np.unravel_index(index, shape)
    return f"pixel (channel {c}, row {h}, col {w})"


class Imputer(ModelTransformer):
    """Fill missing entries (NaN) with a mask-aware autoencoder or VAE.

    Parameters
    ----------
    model : str, path or model
        Registered name trained in :meth:`fit` (``"vae"``, ``"ae"`` or another model that
        ``supports_missing``), a saved model / run folder, or a loaded model (used as it is).
    model_config : dict, optional
        Model settings. Unset keys get imputation defaults on tabular data: ``latent_dim`` =
        ``max(1, min(16, D // 2))`` (a bottleneck: a code as wide as the data learns to copy it and fills
        with the mean), and for the ``vae`` ``learn_sigma=True`` (a per-column noise scale; with the fixed
        sigma = 1 of standardised units the decoder would smooth every column towards its mean),
        ``iw_samples=IW_SAMPLES`` (the MIWAE training bound) and ``hidden=[128, 128]`` (``MIWAE_HIDDEN``;
        both not with ``method="iterative"``).
    method : {"auto", "importance", "iterative"}
        How :meth:`transform` fills: ``"importance"`` (MIWAE's self-normalised importance weights; VAEs only),
        ``"iterative"`` (reconstruct and replace ``n_iter`` times; any model), ``"auto"``: importance for a
        VAE, iterative otherwise.
    n_samples : int
        Importance samples ``K`` per row in :meth:`transform` and :meth:`multiple_imputation` (1 to
        :data:`MAX_N_SAMPLES`; default 1000).
    n_iter : int
        Reconstruct-and-replace rounds in :meth:`transform` (>= 1; default 2, chosen on data sets other than
        those of the bench: scikit-learn's wine table and a synthetic one).
    gaussian_weight : float
        Tabular data: weight ``g`` in [0, 1] of the Gaussian component in the fill, ``g * E_gauss[x_mis | x_obs]
        + (1 - g) * (the model's fill)``; the Gaussian ``N(mean, cov)`` is fitted to the standardised rows with
        their holes by EM (:func:`gaussian_em`; tables of at most ``GAUSSIAN_MAX_FEATURES`` columns). 0: the
        model alone; 1: the Gaussian alone. Default 0.75 (``GAUSSIAN_WEIGHT``, chosen on validation entries).
        :meth:`multiple_imputation` draws from the mixture: each draw of a row comes from the Gaussian
        conditional with probability ``g``. Images use the model alone.
    mask_copies : int
        Images: ``fit`` trains on the images plus ``mask_copies`` copies of each with a random half (top,
        bottom, left or right) missing (:func:`with_half_masked_copies`), so the encoder learns to read images
        with large holes (>= 0; default 1, chosen on a validation split of mnist5k's training images). Each copy
        adds one pass over the data to every epoch. Tabular data: not used.
    epochs, batch_size, random_state, validation_fraction, trainer_config
        Training settings (see :class:`genlab.apps.ModelEstimator`).
    verbose : bool or None, default None
        Show the training progress display (scikit-learn's name): ``True`` on, ``False`` off, ``None`` auto
        (on when stderr is a terminal and ``CI`` is not set; ``GENLAB_PROGRESS=1``/``0`` overrides auto).

    Attributes
    ----------
    model_ : GenerativeModel
        The trained model.
    feature_min_, feature_max_ : ndarray
        Observed range of each feature in the ``fit`` data (model space, shape of a sample); fills are clipped to it.
    gaussian_mean_, gaussian_cov_ : ndarray
        The Gaussian component in model space (standardised columns), ``(D,)`` and ``(D, D)``; empty when it
        is not used (images, ``gaussian_weight=0``, more than ``GAUSSIAN_MAX_FEATURES`` columns).
    n_features_in_ : int
        Number of scalars per sample.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names or a CSV with a header
        (``TensorDataset.columns``); data with other names, or in another order, is then refused.
    input_shape_, kind_
        Sample shape and data kind seen in ``fit``.
    """

    default_model = "vae"
    #: trains on data with holes and fills them by reconstruction; labels are not part of the data
    _needs = ("supports_missing", "can_reconstruct")
    _refuses = ("conditional",)
    _array_state = ("feature_min_", "feature_max_", "gaussian_mean_", "gaussian_cov_")
    #: folders saved before the Gaussian component: no Gaussian (empty arrays), MIWAE fill alone, as then
    _array_defaults = {"gaussian_mean_": (0,), "gaussian_cov_": (0, 0)}
    _allow_nan = True  # NaN marks the entries to fill
    _preserves_dtype = ("float64", "float32")

    def __init__(self, *, model="vae", model_config=None, method="auto", n_samples=1000, n_iter=2,
                 gaussian_weight=GAUSSIAN_WEIGHT, mask_copies=MASK_COPIES, epochs=200, batch_size=128, random_state=0,
                 validation_fraction=0.1, trainer_config=None, verbose=None):
        self.model = model
        self.model_config = model_config
        self.method = method
        self.n_samples = n_samples
        self.n_iter = n_iter
        self.gaussian_weight = gaussian_weight
        self.mask_copies = mask_copies
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.trainer_config = trainer_config
        self.verbose = verbose

    @classmethod
    def _upgrade_params(cls, params: dict) -> dict:
        # estimator.json written before the Gaussian component and the masked copies: the estimator it describes
        # had neither (a clone then refits the same way)
        params.setdefault("gaussian_weight", 0.0)
        params.setdefault("mask_copies", 0)
        return params

    def _check_n_iter(self) -> int:
        n = self.n_iter
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_N_ITER:
            raise ConfigError(f"n_iter must be an integer in [1, {MAX_N_ITER}] (reconstruct-and-replace rounds; the "
                              f"fill settles within a few), got {n!r}; e.g. n_iter=2")
        return int(n)

    def _check_params(self) -> None:
        self._check_n_iter()
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        k = self.n_samples
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_N_SAMPLES:
            raise ConfigError(f"n_samples must be an integer in [1, {MAX_N_SAMPLES}] (importance samples per row; "
                              f"their error falls as 1/sqrt(K)), got {k!r}; e.g. n_samples=1000")
        g = self.gaussian_weight
        if isinstance(g, bool) or not isinstance(g, (int, float, np.integer, np.floating)) or not 0 <= g <= 1:
            raise ConfigError(f"gaussian_weight must be a number in [0, 1] (weight of the Gaussian component), got {g!r}")
        c = self.mask_copies
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0:
            raise ConfigError(f"mask_copies must be an integer >= 0 (half-masked copies per training image), got {c!r}")

    def _gaussian_weight(self) -> float:
        """The weight the fitted estimator gives its Gaussian component (0 when there is none)."""
        return float(self.gaussian_weight) if np.size(self.gaussian_mean_) else 0.0

    def _method(self) -> str:
        """The filling route for the fitted model (``"importance"`` or ``"iterative"``)."""
        is_vae = self._is_vae()
        if self.method == "importance" and not is_vae:
            raise ConfigError(f"method='importance' needs a VAE (a model with a likelihood and an encoder "
                              f"distribution), not {self.model_.registry_name!r}; use method='iterative' or model='vae'")
        if self.method == "auto":
            return "importance" if is_vae else "iterative"
        return self.method

    def _defaults(self, ds: TensorDataset) -> dict:
        """Imputation defaults for the model config (only keys the user left unset)."""
        from ..registry import get_model_entry
        spec = str(self._model_param())
        user = dict(self.model_config or {})
        out: dict = {}
        if ds.kind != "tabular" or not self._trains_by_name():
            return out  # a saved or given model is used as it is
        fields = getattr(get_model_entry(spec).config_cls, "__dataclass_fields__", {})
        if "latent_dim" in fields and "latent_dim" not in user:
            out["latent_dim"] = max(1, min(16, ds.sample_shape[0] // 2))
        if spec == "vae" and "hidden" in fields and "hidden" not in user and self.method != "iterative":
            out["hidden"] = list(MIWAE_HIDDEN)
        if "learn_sigma" in fields and "learn_sigma" not in user and user.get("likelihood", "auto") != "bernoulli":
            out["learn_sigma"] = True
        if "iw_samples" in fields and "iw_samples" not in user and self.method != "iterative" and not any(
                k in user for k in ("beta", "kl_schedule", "free_bits", "capacity_max")):
            out["iw_samples"] = IW_SAMPLES
        return out

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Train the model on ``X`` with its missing entries (NaN) left out of the loss. Returns ``self``."""
        self._check_params()
        self.check_model()
        ds = missing_dataset(self._check_X(X, reset=True), name="X")
        flat = ds.x.flatten(1)  # (N, F)
        never = torch.isnan(flat).all(0)
        if bool(never.any()):
            j = int(never.nonzero()[0])
            raise DataError(f"X: {_feature_name(j, ds.sample_shape)} has no observed value (all NaN); drop it or "
                            "fit on data where it is observed")
        train_ds = ds
        if ds.kind == "image" and self.mask_copies > 0 and self._trains_by_name():  # trained here
            train_ds = with_half_masked_copies(ds, int(self.mask_copies), int(self.random_state or 0))
        self._fit_model(train_ds, config={"model": self._defaults(ds)})
        xm = self._to_model(ds).flatten(1).numpy()  # (N, F) model space, NaN kept
        self.feature_min_ = np.nanmin(xm, 0).reshape(ds.sample_shape).astype(np.float32)
        self.feature_max_ = np.nanmax(xm, 0).reshape(ds.sample_shape).astype(np.float32)
        d = xm.shape[1]
        if ds.kind == "tabular" and self.gaussian_weight > 0 and d <= GAUSSIAN_MAX_FEATURES:
            mean, cov = gaussian_em(torch.from_numpy(xm))
            self.gaussian_mean_, self.gaussian_cov_ = mean.numpy(), cov.numpy()
        else:
            if ds.kind == "tabular" and self.gaussian_weight > 0:
                log.info("Imputer: %d columns > GAUSSIAN_MAX_FEATURES (%d): no Gaussian component", d,
                         GAUSSIAN_MAX_FEATURES)
            self.gaussian_mean_, self.gaussian_cov_ = np.zeros(0), np.zeros((0, 0))
        return self

    # ------------------------------------------------------------------ filling
    def _generator(self, random_state=None) -> torch.Generator:
        g = torch.Generator()
        seed = self.random_state if random_state is None else random_state
        g.manual_seed(int(seed or 0))
        return g

    def _row_batch(self, k: int) -> int:
        """Rows per importance batch so that ``k * rows * features`` stays near 4M floats."""
        return max(1, min(512, (1 << 22) // max(1, k * int(np.prod(self.input_shape_)))))

    @torch.no_grad()
    def _importance_fill(self, x: torch.Tensor, missing: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Model-space ``x`` ``(N, ...)`` (NaN where missing) -> the self-normalised importance estimate of
        ``E[x | x_obs]`` at every entry (MIWAE), accumulated over chunks of importance samples."""
        m = self.model_.eval()
        k_total = int(self.n_samples)
        k_chunk = max(1, min(k_total, 256))
        out = []
        for xb in x.split(self._row_batch(k_chunk)):
            xb = xb.to(m.device)
            run_max = torch.full((len(xb),), -math.inf, dtype=torch.float64, device=m.device)  # (B,)
            wsum = torch.zeros(len(xb), dtype=torch.float64, device=m.device)
            acc = torch.zeros((len(xb), *xb.shape[1:]), dtype=torch.float64, device=m.device)  # (B, ...)
            for start in range(0, k_total, k_chunk):
                k = min(k_chunk, k_total - start)
                logw, raw = m.importance_log_weights(xb, k, generator=g)  # (k, B), (k, B, ...)
                logw = logw.double()
                new_max = torch.maximum(run_max, logw.max(0).values)
                scale = torch.exp(run_max - new_max)  # (B,)
                w = torch.exp(logw - new_max)  # (k, B)
                mean = m._mean(raw).double()  # (k, B, ...) E[x | z_k]
                wsum = wsum * scale + w.sum(0)
                acc = acc * scale.view(-1, *[1] * (acc.ndim - 1)) + torch.einsum("kb,kb...->b...", w, mean)
                run_max = new_max
            out.append((acc / wsum.view(-1, *[1] * (acc.ndim - 1))).float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def _fill(self, x: torch.Tensor, missing: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Model-space ``x`` ``(N, ...)`` with its ``missing`` entries filled (see module notes)."""
        g = self._gaussian_weight()
        if g > 0:  # tabular: g * Gaussian conditional mean + (1 - g) * the model's fill
            gauss = gaussian_conditional(x, torch.from_numpy(self.gaussian_mean_),
                                         torch.from_numpy(self.gaussian_cov_), cond_cov="none")[0].float()
            model_fill = self._model_fill(x, missing, batch_size) if g < 1 else gauss
            return self._clipped_fill(g * gauss + (1 - g) * model_fill, missing, x)
        return self._model_fill(x, missing, batch_size)

    def _clipped_fill(self, est: torch.Tensor, missing: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``x`` with its ``missing`` entries set to ``est`` clipped to each feature's observed range in ``fit``
        (``feature_min_`` / ``feature_max_``, model space)."""
        lo, hi = torch.as_tensor(self.feature_min_), torch.as_tensor(self.feature_max_)
        return torch.where(missing, torch.minimum(torch.maximum(est, lo), hi), x)

    @torch.no_grad()
    def _model_fill(self, x: torch.Tensor, missing: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """The model's own fill of ``x``'s ``missing`` entries (importance-weighted or iterative), clipped."""
        m = self.model_.eval()
        if self._method() == "importance":
            return self._clipped_fill(self._importance_fill(x, missing, self._generator()), missing, x)
        out = []
        for xb, mb in zip(x.split(batch_size), missing.split(batch_size)):
            fill = xb.masked_fill(mb, 0.0)  # (B, ...) as in training: 0 = column mean (tabular), black (images)
            for _ in range(self._check_n_iter()):
                rec = m.reconstruct(fill.to(m.device)).float().cpu()
                fill = self._clipped_fill(rec, mb, xb)
            out.append(fill)
        return torch.cat(out)

    def transform(self, X) -> np.ndarray:
        """``X`` with its NaN entries filled; observed entries are returned exactly as given."""
        return self._transform(X, None)

    def _transform(self, X, draw=None, n: int = 1) -> np.ndarray:
        """``transform``, or with ``draw`` (a function of model-space ``x`` and ``missing``) the ``n`` fills it
        returns, shape ``(n, N, ...)`` -> ``(n, *X.shape)``."""
        self._check_fitted()
        self._check_params()
        X = self._check_X(X, reset=False)  # a numpy array (DataFrames, lists, tensors converted) or a dataset
        ds = missing_dataset(X, name="X")
        self._check_shape(ds)
        original = ds.x.numpy() if isinstance(X, TensorDataset) else X
        dtype = original.dtype if original.dtype.kind == "f" else np.float64
        out = np.array(original, dtype=dtype, copy=True)
        hole = np.isnan(out)
        if not hole.any():
            return out if draw is None else np.stack([out] * n)
        x = self._to_model(ds)  # (N, ...) NaN kept
        missing = torch.isnan(x)
        fills = [self._fill(x, missing)] if draw is None else list(draw(x, missing))
        outs = []
        for fill in fills:
            filled = self._from_model(fill)
            if self.kind_ == "tabular" and isinstance(X, TensorDataset):  # a dataset's own units, not raw units
                filled = ds.norm.from_raw(torch.from_numpy(filled)).numpy()
            o = out.copy()
            o[hole] = restore_layout(filled, X if not isinstance(X, TensorDataset) else out)[hole]
            outs.append(o)
        return outs[0] if draw is None else np.stack(outs)

    @torch.no_grad()
    def _draw(self, x: torch.Tensor, missing: torch.Tensor, n_imputations: int, g: torch.Generator) -> torch.Tensor:
        """``n_imputations`` draws from the importance approximation of ``p(x_mis | x_obs)``, model space ->
        ``(m, N, ...)``: per row, K samples ``z_k ~ q``, one index per imputation drawn with probabilities
        ``softmax(logw)`` (sampling importance resampling), then ``x ~ p(x | z)`` (Gaussian decoders; the
        decoder mean for Bernoulli ones, whose draws would be binary); observed entries copied. With a Gaussian
        component of weight ``gw`` (tabular data), each (imputation, row) comes instead, with probability ``gw``,
        from the Gaussian conditional ``N(cond_mean, cond_cov)`` of the missing entries."""
        gw = self._gaussian_weight()
        res = self._model_draw(x, missing, n_imputations, g) if gw < 1 else None
        if gw == 0:
            return res
        cm, cc, _ = gaussian_conditional(x, torch.from_numpy(self.gaussian_mean_), torch.from_numpy(self.gaussian_cov_))
        obs = (~missing).double()  # (N, D)
        chol = torch.linalg.cholesky(cc + torch.diag_embed(obs))  # (N, D, D); identity on the observed block
        eps = torch.randn((n_imputations, *x.shape), generator=g, dtype=torch.float64)  # (m, N, D)
        gauss = torch.stack([cm + (chol @ e.unsqueeze(-1)).squeeze(-1) for e in eps]).float()  # (m, N, D)
        gauss = self._clipped_fill(gauss, missing, x)
        if res is None:
            return gauss
        pick = torch.rand((n_imputations, len(x), 1), generator=g) < gw  # (m, N, 1) Gaussian component's draws
        return torch.where(pick, gauss, res)

    @torch.no_grad()
    def _model_draw(self, x: torch.Tensor, missing: torch.Tensor, n_imputations: int, g: torch.Generator):
        """The model's own draws (see :meth:`_draw`) -> ``(m, N, ...)``."""
        m = self.model_.eval()
        lo, hi = torch.as_tensor(self.feature_min_), torch.as_tensor(self.feature_max_)
        k = int(self.n_samples)
        res = torch.empty((n_imputations, *x.shape), dtype=torch.float32)
        start = 0
        for xb, mb in zip(x.split(self._row_batch(k)), missing.split(self._row_batch(k))):
            b = len(xb)
            logw, raw = m.importance_log_weights(xb.to(m.device), k, generator=g)  # (k, B), (k, B, ...)
            idx = torch.multinomial(torch.softmax(logw.double(), 0).T.cpu(), n_imputations, replacement=True,
                                    generator=g)  # (B, m)
            mean = m._mean(raw).float().cpu()  # (k, B, ...)
            pick = mean[idx.T, torch.arange(b).expand(n_imputations, b)]  # (m, B, ...)
            if m.likelihood == "gaussian":
                sigma = torch.as_tensor(m.log_sigma_value(), dtype=torch.float32).exp().cpu()
                pick = pick + sigma * torch.randn(pick.shape, generator=g)
            pick = torch.minimum(torch.maximum(pick, lo), hi)
            res[:, start:start + b] = torch.where(mb, pick, xb)
            start += b
        return res

    def multiple_imputation(self, X, n_imputations: int = 5, random_state=None) -> MultipleImputation:
        """``n_imputations`` draws of the missing entries from the model's ``p(x_mis | x_obs)`` (importance
        resampling over ``n_samples`` posterior samples; VAEs only), for Rubin-style multiple imputation.

        Returns a :class:`MultipleImputation`: ``imputations`` ``(m, *X.shape)`` (observed entries as given),
        their ``mean`` and ``between_variance`` (the variance over the ``m`` imputations, ``ddof=1``; 0 at
        observed entries). ``random_state``: seed (None: the estimator's ``random_state``)."""
        self._check_fitted()
        if isinstance(n_imputations, bool) or not isinstance(n_imputations, (int, np.integer)) or n_imputations < 2:
            raise ConfigError(f"n_imputations must be an integer >= 2 (a variance needs two draws), got "
                              f"{n_imputations!r}")
        if not self._is_vae():
            raise ConfigError(f"multiple_imputation draws from a VAE's conditional; {self.model_.registry_name!r} "
                              "has none: fit with model='vae'")
        g = self._generator(random_state)
        imps = self._transform(X, lambda x, miss: self._draw(x, miss, int(n_imputations), g), int(n_imputations))
        same = (imps == imps[:1]).all(0)  # observed entries: exactly 0 (var() rounds to ~1e-30)
        var = np.where(same, 0.0, imps.var(0, ddof=1)).astype(imps.dtype)
        return MultipleImputation(imputations=imps, mean=np.where(same, imps[0], imps.mean(0)), between_variance=var)

    def _is_vae(self) -> bool:
        from ..models.vae import VAE
        return isinstance(self.model_, VAE)

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X, y, **fit_params).transform(X)
