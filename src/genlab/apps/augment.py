"""Data augmentation with a conditional generator: N labelled samples per class, as arrays or files.

>>> aug = Augmenter(model="cvae", n_per_class=100, epochs=200).fit(X, y)
>>> X_new, y_new = aug.generate(random_state=0)          # 100 per class, in the classes_ order
>>> X_res, y_res = Augmenter(n_per_class="balance").fit_resample(X, y)   # real + generated
>>> aug.write("generated/")                               # class sub-folders of PNGs (load_dataset reads it)

Determinism: the samples of class ``k`` come from a ``torch.Generator`` seeded with
``SeedSequence([random_state, k])``, so they do not depend on which other classes are asked for.

Sampling: a cVAE's samples are by default (``sampling="auto"``) **neighbourhood** samples: each real image of the
class is encoded, its code ``mu`` is perturbed with the posterior's own spread,
``z = mu + neighbourhood_scale * sigma * eps``, and decoded with the class label, so the samples are class-faithful
variations of the real ones rather than draws from the prior (``sampling="prior"``, the only choice for a model
without a posterior such as a GAN). On images the generator also learns from shifted copies of each image
(``shift_copies="auto"``, the default: every shift by up to ``max_shift`` = 1 pixel, 8 copies; zero fill) and their
neighbourhoods are sampled too; ``shift_copies=0`` trains on the real images only (the default before, and what
``"auto"`` gives for tabular data, a GAN, ``sampling="prior"`` or a given pre-trained model).

Few real samples (docs/apps/augment.md): generate ``oversample`` times more than asked
and keep the samples a classifier trained on the same real samples finds most typical of their requested class
(``filter="classifier"``), then choose how many to add by cross-validation on the real samples only
(:func:`select_ratio`)::

>>> aug = Augmenter(n_per_class=200, filter="classifier", oversample=4).fit(X, y)
>>> X_new, y_new = aug.generate()        # per class: 800 drawn, the 200 the filter is surest of, surest first
>>> best, scores = select_ratio(X, y, X_new, y_new, LogisticRegression(), ratios=(0, 1, 3, 10))
"""
from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
import torch

from ..data import TensorDataset
from ..errors import ConfigError, DataError
from ._base import ModelEstimator, as_dataset, translate

log = logging.getLogger(__name__)

_BATCH = 512


def _class_seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def folder_names(names: list[str]) -> list[str]:
    """Sub-folder names for classes in label order such that sorting them (as :func:`genlab.load_dataset`
    does) gives back the label order: digit names are zero-padded (``"07"``), other names get a zero-padded
    index prefix (``"03_cat"``) unless they already sort in label order. Path separators become ``_``."""
    clean = [re.sub(r"[\\/\x00]", "_", str(n)).strip() or "_" for n in names]
    clean = ["_" + c if c.startswith(".") else c for c in clean]
    if all(c.isdigit() for c in clean):
        ints = [int(c) for c in clean]
        if ints == sorted(ints) and len(set(ints)) == len(ints):
            w = max(len(str(i)) for i in ints)
            return [f"{i:0{w}d}" for i in ints]
    if clean == sorted(clean) and len(set(clean)) == len(clean):
        return clean
    w = len(str(len(clean) - 1))
    return [f"{k:0{w}d}_{c}" for k, c in enumerate(clean)]


#: the declared capabilities neighbourhood sampling needs: a posterior q(z | x, y) (``encode``/``posterior``
#: with labels) to perturb, and a decoder that takes the label
POSTERIOR_CAPS = ("conditional", "has_encoder", "has_likelihood")


def _has_posterior(model_or_cls) -> bool:
    """Whether a model (instance or class) declares every capability in :data:`POSTERIOR_CAPS`."""
    from ..models import capabilities
    caps = capabilities(model_or_cls)
    return all(caps[c] for c in POSTERIOR_CAPS)


def shift_images(x: torch.Tensor, copies: int, max_shift: int, seed: int) -> torch.Tensor:
    """``copies`` copies of each image ``x`` ``(N, C, H, W)``, each shifted by a distinct random ``(dx, dy)`` in
    ``{-max_shift..max_shift}^2`` minus ``(0, 0)`` with zero fill -> ``(N * copies, C, H, W)``, the copies of
    image 0 first. ``dx > 0`` moves the content right, ``dy > 0`` down. Seeded by ``SeedSequence([seed, 1])``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    moves = [(dx, dy) for dx in range(-max_shift, max_shift + 1) for dy in range(-max_shift, max_shift + 1)
             if (dx, dy) != (0, 0)]
    out = torch.zeros((len(x) * copies, *x.shape[1:]), dtype=x.dtype)
    for i in range(len(x)):
        for j, m in enumerate(rng.choice(len(moves), copies, replace=False)):
            out[i * copies + j] = translate(x[i], *moves[m])
    return out


class Augmenter(ModelEstimator):
    """Generate labelled samples per class from a conditional VAE or GAN.

    Parameters
    ----------
    model : str, path or GenerativeModel, default "cvae"
        A conditional model: ``cvae``, ``cgan`` or ``acgan`` trained in ``fit`` on ``(X, y)``, a saved model /
        run folder, or a loaded model (then its label space is used as it is: ``y`` must be integers in
        ``[0, num_classes)``).
    model_config : dict, optional
        Config of the model trained in ``fit``.
    n_per_class : int or "balance", default 100
        Samples to generate per class, or ``"balance"``: top every class up to the largest real class count.
    filter : {None, "classifier"}, default None
        ``"classifier"``: a multinomial logistic regression (scikit-learn, ``C=filter_C``) is trained in ``fit``
        on the real samples (model space, flattened); :meth:`generate` draws ``oversample`` x as many samples per
        class and keeps those it gives the highest probability of their requested class, most probable first.
    oversample : float, default 4.0
        Draws per kept sample with ``filter="classifier"`` (>= 1).
    filter_C : float, default 1.0
        Inverse regularisation of the filter's logistic regression.
    sampling : {"auto", "neighbourhood", "prior"}, default "auto"
        ``"neighbourhood"``: per sample, a source (a real sample of the class, or a shifted copy) taken in a seeded
        round-robin order, its posterior ``q(z|x, y) = N(mu, sigma^2)``, ``z = mu + neighbourhood_scale * sigma *
        eps``, decoded with the class label (needs a model with a posterior: ``cvae``). ``"prior"``:
        ``z ~ N(0, I)`` (or the model's own sampler). ``"auto"``: neighbourhood for a ``cvae``, prior otherwise.
        A class with no real sample in ``fit`` (a pre-trained model's label space) is drawn from the prior.
    neighbourhood_scale : float, default 1.0
        Multiple of the posterior's standard deviation in neighbourhood sampling (> 0).
    shift_copies : int or "auto", default "auto"
        Image data only: the generator is trained on the real samples plus this many copies of each, shifted by
        distinct random ``(dx, dy)`` in ``{-max_shift..max_shift}^2`` minus ``(0, 0)`` (zero fill; seeded by
        ``random_state``); neighbourhood sampling also varies the copies. At most ``(2 max_shift + 1)^2 - 1``.
        ``"auto"``: every such shift once (``(2 max_shift + 1)^2 - 1``, i.e. 8 with ``max_shift=1``) when ``fit``
        trains a conditional VAE on images with neighbourhood sampling, else 0 (tabular data, a GAN,
        ``sampling="prior"``, a given pre-trained model). Copies multiply the training steps per epoch by
        ``1 + shift_copies``. Chosen on selection draws (docs/apps/augment.md), never the test split.
    max_shift : int, default 1
        Largest shift in pixels of ``shift_copies`` (>= 1). Was 2 before ``shift_copies="auto"``: pass
        ``max_shift=2`` with more than 8 copies.
    epochs, batch_size, random_state, validation_fraction, trainer_config
        Training of the wrapped model (see :class:`~genlab.apps.ModelEstimator`); ``random_state`` also seeds
        :meth:`generate` when it is given no ``random_state``.
    verbose : bool or None, default None
        Show the training progress display (scikit-learn's name): ``True`` on, ``False`` off, ``None`` auto
        (on when stderr is a terminal and ``CI`` is not set; ``GENLAB_PROGRESS=1``/``0`` overrides auto).

    Attributes
    ----------
    model_ : GenerativeModel
    classes_ : ndarray of shape (K,)
        The class labels, in the model's label order (sorted unique labels of ``y`` when trained in ``fit``).
    class_names_ : list of str
        Names of the classes (the data set's class names when it has them, else ``str(label)``).
    class_counts_ : list of int
        Real samples per class seen in ``fit``.
    filter_coef_, filter_intercept_ : list
        Weights ``(K, D)`` and biases ``(K,)`` of the filter (``filter="classifier"``; stored as JSON, no pickle).
    sampling_ : str
        The sampling used: ``"neighbourhood"`` or ``"prior"``.
    shift_copies_ : int
        The shifted copies per image the generator was trained on (``shift_copies`` with ``"auto"`` resolved).
    source_mu_, source_logvar_ : list or None
        Posterior means and log-variances ``(S, L)`` of the neighbourhood sources (the real samples, then their
        shifted copies), ``None`` with prior sampling; stored in the saved estimator (2 L floats per source).
    source_labels_ : list or None
        Class index (position in ``classes_``) of each source.
    n_features_in_ : int
        Scalars per sample (``D``, or ``C*H*W`` for images).
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names or a CSV with a header
        (``TensorDataset.columns``); data with other names, or in another order, is then refused.
    """

    default_model = "cvae"
    #: ``sample(n, labels=...)`` draws samples of a requested class
    _needs = ("conditional", "can_sample")
    _json_state = ("classes_", "class_names_", "class_counts_", "filter_coef_", "filter_intercept_", "sampling_",
                   "source_mu_", "source_logvar_", "source_labels_", "shift_copies_")
    _requires_y = True

    def __init__(self, *, model="cvae", model_config=None, n_per_class=100, filter=None, oversample=4.0,
                 filter_C=1.0, sampling="auto", neighbourhood_scale=1.0, shift_copies="auto", max_shift=1, epochs=50,
                 batch_size=128, random_state=0, validation_fraction=0.1, trainer_config=None, verbose=None):
        self.model = model
        self.model_config = model_config
        self.n_per_class = n_per_class
        self.filter = filter
        self.oversample = oversample
        self.filter_C = filter_C
        self.sampling = sampling
        self.neighbourhood_scale = neighbourhood_scale
        self.shift_copies = shift_copies
        self.max_shift = max_shift
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.trainer_config = trainer_config
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    @staticmethod
    def _check_n(n) -> int | str:
        if isinstance(n, str) and n == "balance":
            return n
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n_per_class must be an integer >= 0 or 'balance', got {n!r}; e.g. n_per_class=100")
        return int(n)

    def fit(self, X, y=None):
        """Train (or load) the conditional model on labelled data.

        Parameters
        ----------
        X : array-like of shape (N, C, H, W), (N, H, W) or (N, D), or a labelled TensorDataset
        y : array-like of shape (N,)
            Class labels (any sortable values; a TensorDataset's own labels are used when ``y`` is None).

        Returns
        -------
        self
        """
        self._check_n(self.n_per_class)
        self._check_filter()
        self._check_sampling()
        self.check_model()
        X = self._check_X(X, reset=True)  # a numpy array, or a TensorDataset as given
        ds_names = X.classes if isinstance(X, TensorDataset) else None
        if y is None and isinstance(X, TensorDataset):
            y = X.y
        if y is None:
            raise DataError("Augmenter requires y to be passed, but the target y is None; pass y (one class label "
                            "per sample) or labelled data (class sub-folders, an .npz with 'y', a CSV 'label' column)")
        yy = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if yy.ndim != 1:
            raise DataError(f"y must be a 1-D array of class labels, got shape {yy.shape}")
        if yy.dtype.kind == "f" and np.isnan(yy).any():
            raise DataError("y contains NaN; give every sample a class label")
        if yy.dtype.kind not in "iubfUSO":
            raise DataError(f"y has dtype {yy.dtype}; give integer or string class labels")
        x_in = X.x if isinstance(X, TensorDataset) else X
        norm = X.norm if isinstance(X, TensorDataset) else None
        if self._trains_by_name():
            classes, enc = np.unique(yy, return_inverse=True)
            if norm is None:
                ds = as_dataset(x_in, enc.astype(np.int64))
            else:
                as_dataset(X)  # refuses NaN
                if len(yy) != len(X):
                    raise DataError(f"{len(X)} samples but {len(yy)} labels; give one label per sample")
                ds = TensorDataset(X.x, torch.from_numpy(enc.astype(np.int64)), norm=norm, name=X.name)
            src = self._with_copies(ds)
            self._fit_model(src)
            if ds_names and classes.dtype.kind in "iu" and int(classes.max()) < len(ds_names):
                names = [str(ds_names[int(c)]) for c in classes]
            else:
                names = [str(c) for c in classes]
        else:
            ds = as_dataset(x_in) if norm is None else as_dataset(TensorDataset(X.x, None, norm=norm, name=X.name))
            if len(yy) != len(ds):
                raise DataError(f"{len(ds)} samples but {len(yy)} labels; give one label per sample")
            src = self._with_copies(ds)
            model = self._fit_model(src)
            k = int(model.num_classes)
            if yy.dtype.kind not in "iu" and not (yy.dtype.kind == "f" and (yy == np.round(yy)).all()):
                raise DataError(f"the given model was trained on labels 0..{k - 1}; y must hold integers in that "
                                "range")
            if len(yy) and (yy.min() < 0 or yy.max() >= k):
                bad = yy.min() if yy.min() < 0 else yy.max()
                raise DataError(f"label {bad} is outside the model's classes 0..{k - 1}; give labels in that range")
            classes = np.arange(k)
            enc = yy.astype(np.int64)
            src_y = np.concatenate([enc, np.repeat(enc, self.shift_copies_)])  # real, then copies
            src = TensorDataset(src.x, torch.from_numpy(src_y), norm=src.norm, name=src.name)
            stored = model.data_info.get("classes") or []
            names = [str(stored[i]) if i < len(stored) else str(i) for i in range(k)]
        self.classes_ = classes
        self.class_names_ = names
        self.class_counts_ = np.bincount(enc, minlength=len(classes)).astype(int).tolist()
        self.filter_coef_, self.filter_intercept_ = None, None
        if self.filter == "classifier":
            self._fit_filter(self._to_model(ds), enc)
        self._fit_sources(src)
        log.info("Augmenter: %d classes, %d real samples", len(classes), len(yy))
        return self

    def _check_sampling(self) -> None:
        if self.sampling not in ("auto", "neighbourhood", "prior"):
            raise ConfigError(f"sampling must be 'auto', 'neighbourhood' or 'prior', got {self.sampling!r}")
        v = self.neighbourhood_scale
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
            raise ConfigError(f"neighbourhood_scale must be a number > 0, got {v!r}; e.g. neighbourhood_scale=1.0")
        m = self.max_shift
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ConfigError(f"max_shift must be an integer >= 1 (pixels), got {m!r}")
        c, top = self.shift_copies, (2 * int(m) + 1) ** 2 - 1
        if isinstance(c, str) and c == "auto":
            return
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c <= top:
            hint = "; pass max_shift=2 for up to 24" if m == 1 and isinstance(c, (int, np.integer)) and c > 8 else ""
            raise ConfigError(f"shift_copies must be 'auto' or an integer in [0, {top}] (distinct shifts of at most "
                              f"max_shift={m} pixels), got {c!r}{hint}")

    def _auto_copies(self, ds: TensorDataset) -> int:
        """``shift_copies`` with ``"auto"`` resolved: every shift of at most ``max_shift`` pixels when ``fit``
        trains a conditional VAE on images for neighbourhood sampling, else 0."""
        if not (isinstance(self.shift_copies, str) and self.shift_copies == "auto"):
            return int(self.shift_copies)
        if not self._trains_by_name() or ds.kind != "image" or self.sampling == "prior":
            return 0
        from ..registry import get_model_entry
        if not _has_posterior(get_model_entry(str(self._model_param())).cls):
            return 0
        return (2 * int(self.max_shift) + 1) ** 2 - 1

    def _with_copies(self, ds: TensorDataset) -> TensorDataset:
        """``ds`` followed by ``shift_copies_`` shifted copies of each sample (same labels); ``ds`` when none.
        Sets ``shift_copies_``."""
        c = self.shift_copies_ = self._auto_copies(ds)
        if c == 0:
            return ds
        if ds.kind != "image":
            raise ConfigError("shift_copies needs image data (it shifts pixels); leave shift_copies=0 for tabular data")
        side = min(ds.x.shape[-2:])
        if self.max_shift >= side:  # a shift by a whole side leaves an empty image (and lists (2m+1)^2 moves)
            raise ConfigError(f"max_shift={self.max_shift} is not smaller than the images' side ({side} pixels); "
                              f"use max_shift in [1, {side - 1}] (1 by default)")
        copies = shift_images(ds.x, c, self.max_shift, self.random_state)
        y = None if ds.y is None else ds.y.repeat_interleave(c)
        return TensorDataset(torch.cat([ds.x, copies]), None if y is None else torch.cat([ds.y, y]), norm=ds.norm,
                             name=ds.name)

    def _uses_posterior(self, model) -> bool:
        has = _has_posterior(model)
        if self.sampling == "neighbourhood" and not has:
            raise ConfigError(f"sampling='neighbourhood' needs a model with a posterior q(z|x, y) (cvae), got "
                              f"{model.registry_name!r}; use sampling='prior'")
        return has and self.sampling != "prior"

    @torch.no_grad()
    def _fit_sources(self, src: TensorDataset) -> None:
        """The posteriors of the neighbourhood sources (``src``: real samples, then their shifted copies)."""
        self.source_mu_ = self.source_logvar_ = self.source_labels_ = None
        self.sampling_ = "neighbourhood" if self._uses_posterior(self.model_) else "prior"
        if self.sampling_ == "prior":
            return
        m = self.model_.eval()
        x, y = self._to_model(src), src.y.long()
        mus, lvs = [], []
        for i in range(0, len(x), _BATCH):
            mu, lv = m.posterior(x[i:i + _BATCH].to(m.device), y[i:i + _BATCH].to(m.device))
            mus.append(mu.float().cpu())
            lvs.append(lv.float().cpu())
        self.source_mu_ = torch.cat(mus).tolist()
        self.source_logvar_ = torch.cat(lvs).tolist()
        self.source_labels_ = y.tolist()

    def _check_filter(self) -> None:
        if self.filter not in (None, "classifier"):
            raise ConfigError(f"filter must be None or 'classifier', got {self.filter!r}; e.g. filter='classifier'")
        for name, lo in (("oversample", 1.0), ("filter_C", 0.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < lo or v == 0:
                raise ConfigError(f"{name} must be a number {'>= 1' if lo else '> 0'}, got {v!r}")

    def _fit_filter(self, x: torch.Tensor, enc: np.ndarray) -> None:
        """The filter: multinomial logistic regression on the flattened real samples (model space)."""
        from sklearn.linear_model import LogisticRegression
        k = len(self.classes_)
        if len(np.unique(enc)) < 2:
            raise DataError("filter='classifier' needs at least two classes in y; drop filter= for one class")
        clf = LogisticRegression(C=float(self.filter_C), max_iter=3000).fit(x.flatten(1).numpy(), enc)
        coef = np.zeros((k, x[0].numel()))
        icpt = np.full(k, -np.inf)  # a class absent from y is never the filter's choice
        coef[clf.classes_], icpt[clf.classes_] = clf.coef_, clf.intercept_
        if len(clf.classes_) == 2:  # sklearn's binary case: one row for class 1 against class 0
            coef[clf.classes_] = np.stack([-clf.coef_[0] / 2, clf.coef_[0] / 2])
            icpt[clf.classes_] = [-clf.intercept_[0] / 2, clf.intercept_[0] / 2]
        self.filter_coef_, self.filter_intercept_ = coef.tolist(), icpt.tolist()

    def filter_proba(self, X) -> np.ndarray:
        """Class probabilities ``(N, K)`` (columns in ``classes_`` order) the filter gives samples ``X`` (images
        in [0, 1] / rows in the data's units). Needs ``filter="classifier"``."""
        self._check_fitted()
        if getattr(self, "filter_coef_", None) is None:
            raise ConfigError("this Augmenter has no filter; fit it with filter='classifier'")
        ds = as_dataset(X)
        self._check_shape(ds)
        return self._proba(self._to_model(ds))

    def _proba(self, x: torch.Tensor) -> np.ndarray:
        logits = x.flatten(1).double().numpy() @ np.asarray(self.filter_coef_).T + np.asarray(self.filter_intercept_)
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    @classmethod
    def load(cls, path):
        """Rebuild an Augmenter written by :meth:`save`."""
        est = super().load(path)
        est.classes_ = np.asarray(est.classes_)
        for k in ("filter_coef_", "filter_intercept_", "source_mu_", "source_logvar_", "source_labels_"):
            if not hasattr(est, k):  # saved before the filter / neighbourhood sampling existed
                setattr(est, k, None)
        if not hasattr(est, "sampling_"):
            est.sampling_ = "prior"
        if not hasattr(est, "shift_copies_"):  # saved before shift_copies="auto": an int (or absent, then 0)
            est.shift_copies_ = 0 if isinstance(est.shift_copies, str) else int(est.shift_copies)
        return est

    @classmethod
    def _upgrade_params(cls, params: dict) -> dict:
        """Folders saved before ``shift_copies`` existed trained on the real samples only; before ``"auto"`` the
        default ``max_shift`` was 2: a refit (``clone(est).fit``) keeps doing what it did."""
        params.setdefault("shift_copies", 0)
        params.setdefault("max_shift", 2)
        return params

    # ------------------------------------------------------------------ generation
    def _class_index(self, classes) -> list[int]:
        if classes is None:
            return list(range(len(self.classes_)))
        wanted = np.atleast_1d(np.asarray(classes))
        lookup = {v: i for i, v in enumerate(self.classes_.tolist())}
        out = []
        for c in wanted.tolist():
            if c not in lookup:
                shown = self.classes_.tolist()
                shown = shown if len(shown) <= 12 else shown[:5] + ["..."] + shown[-5:]
                raise ConfigError(f"label {c!r} is not one of the fitted classes {shown}; pick labels from "
                                  "classes_")
            out.append(lookup[c])
        return out

    def _counts(self, n_per_class, idx: list[int]) -> list[int]:
        n = self._check_n(self.n_per_class if n_per_class is None else n_per_class)
        if n == "balance":
            top = max(self.class_counts_)
            return [top - self.class_counts_[k] for k in idx]
        return [n] * len(idx)

    @torch.no_grad()
    def _sample_class(self, k: int, n: int, seed: int) -> torch.Tensor:
        m = self.model_.eval()
        g = torch.Generator().manual_seed(_class_seed(seed, k))
        filtered = getattr(self, "filter_coef_", None) is not None
        draws = int(np.ceil(n * float(self.oversample))) if filtered else n
        src = None
        if getattr(self, "sampling_", "prior") == "neighbourhood":
            src = np.flatnonzero(np.asarray(self.source_labels_) == k)
            if len(src) == 0:
                log.info("Augmenter: class %s has no real sample; drawing it from the prior", self.classes_[k])
                src = None
        parts = []
        if src is not None:
            perm = torch.randperm(len(src), generator=g).numpy()
            order = torch.from_numpy(src[np.resize(perm, draws)])  # round-robin over a seeded permutation
            mu = torch.tensor(self.source_mu_, dtype=torch.float32)[order]  # (draws, L)
            sd = torch.tensor(self.source_logvar_, dtype=torch.float32)[order].mul(0.5).exp()
            z = mu + float(self.neighbourhood_scale) * sd * torch.randn(mu.shape, generator=g)
            for i in range(0, draws, _BATCH):
                zb = z[i:i + _BATCH].to(m.device)
                parts.append(m.decode(zb, torch.full((len(zb),), k, dtype=torch.long, device=m.device)).float().cpu())
        else:
            for i in range(0, draws, _BATCH):
                b = min(_BATCH, draws - i)
                parts.append(m.sample(b, labels=torch.full((b,), k, dtype=torch.long), generator=g).float().cpu())
        x = torch.cat(parts)  # (draws, *shape) model space
        if not filtered:
            return x
        p = self._proba(x)[:, k]
        keep = np.argsort(-p, kind="stable")[:n]  # the n the filter is surest of, surest first
        return x[torch.from_numpy(keep)]

    def generate(self, n_per_class=None, *, classes=None, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """Generate labelled samples.

        Parameters
        ----------
        n_per_class : int or "balance", optional
            Default: the ``n_per_class`` parameter.
        classes : sequence, optional
            Labels (values of ``classes_``) to generate; default all, in ``classes_`` order.
        random_state : int, optional
            Default: the ``random_state`` parameter.

        Returns
        -------
        X_new : ndarray
            Images ``(M, C, H, W)`` float32 in [0, 1] or tabular rows ``(M, D)`` in the data's units,
            grouped by class.
        y_new : ndarray of shape (M,)
            Their labels (values of ``classes_``).
        """
        self._check_fitted()
        idx = self._class_index(classes)
        counts = self._counts(n_per_class, idx)
        from ..io.memory import check_fits
        factor = float(self.oversample) if getattr(self, "filter_coef_", None) is not None else 1.0
        draws = sum(int(np.ceil(c * factor)) for c in counts)
        check_fits(2 * 4 * draws * int(np.prod(self.input_shape_)),  # float32 draws, then the output copy
                   f"{draws:,} draws of {tuple(self.input_shape_)}", "ask for fewer samples per class (n_per_class, "
                   "genlab augment -n) or a smaller oversample")
        seed = self.random_state if random_state is None else random_state
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"random_state must be an integer >= 0, got {seed!r}")
        xs = [self._sample_class(k, n, int(seed)) for k, n in zip(idx, counts) if n > 0]
        x = torch.cat(xs) if xs else torch.zeros((0, *self.input_shape_))
        y = np.repeat(np.asarray(self.classes_)[idx], counts) if idx else np.asarray(self.classes_)[:0]
        return self._from_model(x).astype(np.float32), y

    def fit_resample(self, X, y=None) -> tuple[np.ndarray, np.ndarray]:
        """Fit on ``(X, y)`` and return the real samples followed by ``generate()``'s (imblearn style).

        The generated samples are converted to the layout and dtype of ``X`` (e.g. ``(N, H, W)`` uint8 images
        are rounded to 8-bit pixels; a TensorDataset gives ``(N, C, H, W)`` floats in [0, 1]).
        """
        self.fit(X, y)
        if isinstance(X, TensorDataset):
            real = X.x.numpy() if X.kind == "image" else X.norm.to_raw(X.x).numpy()
            y_real = X.y.numpy() if y is None else np.asarray(y)
            X_new, y_new = self.generate()
            return np.concatenate([real, X_new.astype(real.dtype)]), np.concatenate([y_real, y_new])
        real = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        y_real = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        X_new, y_new = self.generate()
        return np.concatenate([real, self._like(X_new, real)]), np.concatenate([y_real, y_new.astype(y_real.dtype)])

    def _like(self, x_new: np.ndarray, real: np.ndarray) -> np.ndarray:
        """Generated samples in the layout and dtype of the caller's array ``real``."""
        if self.kind_ == "image":
            if real.ndim == 3:
                x_new = x_new[:, 0]  # (M, H, W)
            elif real.ndim == 4 and tuple(real.shape[1:]) != tuple(self.input_shape_):
                x_new = x_new.transpose(0, 2, 3, 1)  # channels-last input
            if real.dtype.kind in "iu":
                return np.rint(x_new * 255.0).clip(0, 255).astype(real.dtype)
        return x_new.astype(real.dtype if real.dtype.kind == "f" else np.float32)

    # ------------------------------------------------------------------ files
    def write(self, path, X_new=None, y_new=None, *, n_per_class=None, classes=None, random_state=None,
              format: str = "auto", overwrite: bool = False) -> Path:
        """Write generated samples (``generate(n_per_class, classes=..., random_state=...)``, or the given
        ``X_new``/``y_new``, e.g. from :meth:`fit_resample`) as an image folder or an ``.npz``.

        ``format="auto"`` writes an ``.npz`` when ``path`` ends in ``.npz``, else a folder. The folder holds one
        sub-folder per class (named by :func:`folder_names`, so :func:`genlab.load_dataset` reads the labels
        back as positions in ``classes_``) with 8-bit PNGs ``000000.png``, ...; it is written atomically and an
        existing non-empty folder is only replaced with ``overwrite=True``. The ``.npz`` holds ``x`` (images as
        ``(M, C, H, W)`` uint8, tabular rows as float32 in the data's units), ``y`` (the labels when they are
        integers, else class indices) and ``classes`` (class names).
        """
        self._check_fitted()
        path = Path(path)
        fmt = ("npz" if path.suffix.lower() == ".npz" else "folder") if format == "auto" else format
        if fmt not in ("folder", "npz"):
            raise ConfigError(f"format must be auto, folder or npz, got {format!r}")
        if X_new is None:
            X_new, y_new = self.generate(n_per_class, classes=classes, random_state=random_state)
        elif y_new is None:
            raise ConfigError("write(path, X_new, y_new): give the labels y_new with X_new")
        if len(X_new) == 0:
            raise ConfigError("nothing to write: no samples (n_per_class=0?); ask for at least one sample")
        ds = as_dataset(X_new)
        self._check_shape(ds)
        y_arr = y_new.detach().cpu().numpy() if isinstance(y_new, torch.Tensor) else np.asarray(y_new)
        if y_arr.shape != (len(ds),):
            raise DataError(f"{len(ds)} samples but labels of shape {y_arr.shape}; give one label per sample")
        idx = np.asarray(self._class_index(y_arr), dtype=np.int64)
        x = ds.x if ds.kind == "image" else ds.norm.to_raw(ds.x)
        if fmt == "npz":
            return self._write_npz(path, x, idx)
        return self._write_folder(path, x, idx, overwrite)

    def _write_npz(self, path: Path, x: torch.Tensor, idx: np.ndarray) -> Path:
        from ..io.atomic import write_bytes_atomic
        if self.kind_ == "image":
            arr = x.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()  # (M, C, H, W)
        else:
            arr = x.numpy().astype(np.float32)
        classes = np.asarray(self.classes_)
        y = classes[idx] if classes.dtype.kind in "iu" else idx
        buf = io.BytesIO()
        np.savez(buf, x=arr, y=y.astype(np.int64), classes=np.asarray(self.class_names_, dtype=str))
        write_bytes_atomic(path, buf.getvalue())
        return path

    def _write_folder(self, path: Path, x: torch.Tensor, idx: np.ndarray, overwrite: bool) -> Path:
        from PIL import Image

        from ..io.atomic import atomic_dir
        from ..io.images import to_uint8
        if self.kind_ != "image":
            raise ConfigError("an image folder needs image data; write tabular samples to a .npz path")
        if self.input_shape_[0] not in (1, 3):
            raise ConfigError(f"PNG folders hold grey or RGB images, got {self.input_shape_[0]} channels; "
                              "write to a .npz path")
        if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
            raise ConfigError(f"{path} already exists; choose a new folder or pass overwrite=True (--out to a "
                              "new folder in the CLI)")
        names = folder_names(self.class_names_)
        tiles = to_uint8(x) if len(x) else np.zeros((0, 1, 1, 1), np.uint8)  # (M, H, W, C)
        with atomic_dir(path) as tmp:
            for k in np.unique(idx).tolist():
                sub = tmp / names[k]
                sub.mkdir()
                for j, i in enumerate(np.flatnonzero(idx == k).tolist()):
                    t = tiles[i]
                    Image.fromarray(t[:, :, 0] if t.shape[2] == 1 else t).save(sub / f"{j:06d}.png")
        log.info("Augmenter: wrote %d images in %d class folders to %s", len(x), len(np.unique(idx)), path)
        return path


def select_ratio(X, y, X_gen, y_gen, classifier, *, ratios=(0, 0.5, 1, 2, 5, 10), cv=5, random_state=0,
                 generate=None) -> tuple[float, dict]:
    """Choose how many generated samples to add, by cross-validation on the **real** samples only.

    For each ratio ``r`` and each of ``cv`` stratified folds of the real ``(X, y)``, a clone of ``classifier``
    (any scikit-learn classifier) is trained on the other real folds plus, per class, the first
    ``round(r * n_k)`` generated samples of that class (``n_k``: the class's real samples in those folds;
    :meth:`Augmenter.generate` with a filter lists the surest first), and scored (accuracy) on the held-out real
    fold. No test data is touched; the generator and filter were trained on all real samples, including each
    held-out fold, so the scores flatter the generated samples a little (the choice, not a test figure).

    Parameters
    ----------
    X, y : arrays
        The real samples and labels (the ones the Augmenter was fitted on).
    X_gen, y_gen : arrays, or None
        Generated samples and labels, in the order to take them within each class. Or pass ``X_gen=None`` and
        ``generate=``.
    classifier : scikit-learn classifier
    ratios : sequence of float
        Generated samples per real sample; ``0`` is real-only.
    cv : int
        Stratified folds (at most the smallest class count).
    random_state : int
        Seeds the fold shuffling.
    generate : callable, optional
        Leak-free choice: ``generate(X_tr, y_tr) -> (X_gen, y_gen)`` is called once per fold with that fold's
        real training part only (e.g. fit an Augmenter on them and return ``generate()``), so no held-out real
        image has been seen by the generator or the filter. Costs one generator fit per fold.

    Returns
    -------
    best : float
        The ratio with the highest mean fold accuracy (the smallest ratio among ties).
    scores : dict
        Ratio -> mean fold accuracy.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold
    X, y = np.asarray(X), np.asarray(y)
    if (X_gen is None) == (generate is None):
        raise ConfigError("give either generated samples (X_gen, y_gen) or generate=, not both or neither")
    if X_gen is not None:
        X_gen, y_gen = np.asarray(X_gen), np.asarray(y_gen)
    if len(X) != len(y) or (X_gen is not None and len(X_gen) != len(y_gen)):
        raise DataError("X and y (and X_gen and y_gen) must have one label per sample")
    if not ratios or any(isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0 for r in ratios):
        raise ConfigError(f"ratios must be non-negative numbers, got {ratios!r}")
    folds = int(min(cv, np.bincount(np.unique(y, return_inverse=True)[1]).min()))
    if folds < 2:
        raise DataError("select_ratio needs at least 2 real samples per class for cross-validation")
    flat = X.reshape(len(X), -1)
    split = list(StratifiedKFold(folds, shuffle=True, random_state=random_state).split(flat, y))
    gens = []
    for tr, _ in split:
        xg, yg = (X_gen, y_gen) if generate is None else generate(X[tr], y[tr])
        xg, yg = np.asarray(xg), np.asarray(yg)
        gens.append((xg.reshape(len(xg), -1), yg, {c: np.flatnonzero(yg == c) for c in np.unique(y)}))
    scores = {}
    for r in ratios:
        acc = []
        for (tr, va), (gen_flat, y_gen, by_class) in zip(split, gens):
            extra = np.concatenate([by_class[c][:int(round(r * (y[tr] == c).sum()))] for c in by_class]).astype(int)
            xs = np.concatenate([flat[tr], gen_flat[extra]])
            ys = np.concatenate([y[tr], y_gen[extra]])
            clf = clone(classifier).fit(xs.reshape(len(xs), *X.shape[1:]), ys)
            acc.append(float((clf.predict(X[va]) == y[va]).mean()))
        scores[float(r)] = float(np.mean(acc))
        log.info("select_ratio: ratio %g -> CV accuracy %.4f", r, scores[float(r)])
    best = max(scores, key=lambda r: (scores[r], -r))
    return best, scores
