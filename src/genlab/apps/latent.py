"""Latent-space tools: interpolation, traversal, arithmetic and 2-D maps of a model's codes.

>>> from genlab.apps import LatentExplorer, slerp
>>> ex = LatentExplorer(model="vae", epochs=30).fit(X)
>>> frames = ex.interpolate(X[0], X[1], steps=8, method="spherical")   # (8, C, H, W)
>>> grid = ex.traverse(X[0], span=3.0, steps=7)                          # (L, 7, C, H, W)
>>> xy = ex.latent_map(X, method="tsne")                                 # (N, 2)

Conventions (they change the pictures and the numbers):

* **what a model needs** (declared capabilities, checked by :func:`genlab.models.require`): ``fit`` needs a
  decoder (``has_decoder``: autoencoders, VAEs, GANs); mapping inputs to codes (``encode``, ``interpolate``,
  ``traverse(x)``, ``arithmetic``, ``latent_map``) needs an encoder (``has_encoder``). GANs take codes ``z`` only
  (:meth:`LatentExplorer.interpolate_codes`, :meth:`LatentExplorer.traverse` without ``x``, ``decode``).
* **codes**: ``encode`` gives the deterministic code of an input (the model's ``encode``): the posterior mean
  ``mu(x)`` for VAEs, the encoder output for autoencoders.
* **the maths** (interpolation ``lerp``/``slerp``, traversal grids, arithmetic) lives in :mod:`genlab.latent`,
  pure functions with their conventions stated there. The traversal centre ``c`` is the code of ``x`` (or a
  given ``z``), else the prior mean 0 (VAEs, GANs) or the mean of the training codes (autoencoders); the unit
  ``s_d`` is the prior standard deviation 1 (VAEs, GANs: ``span`` is in prior std units) or the standard
  deviation of dimension ``d`` of the training codes (autoencoders, which have no prior: ``span`` is in
  training-code std units).
* **conditional models** (``cvae``, ``cgan``, ``acgan``) encode and decode with a class label: give
  ``labels`` (one int), otherwise a ``cvae`` infers it from the input (see each method).
* outputs are in the caller's units: images in [0, 1] ``(…, C, H, W)``, tabular rows in raw units.
"""
from __future__ import annotations

import contextlib
import logging
import math
import numbers
from typing import ClassVar

import numpy as np
import torch

from ..data import TensorDataset
from ..errors import ConfigError, DataError
from ..io.plots import (  # noqa: F401  (the figures, drawn in io/plots.py; re-exported here)
    plot_interpolation,
    plot_latent_map,
    plot_traversal,
)
from ..latent import (  # noqa: F401  (lerp, slerp, METHODS, PARALLEL_EPS: re-exported, genlab.apps.lerp)
    METHODS,
    PARALLEL_EPS,
    check_span,
    check_steps,
    code_arithmetic,
    interpolator,
    lerp,
    slerp,
    traversal_codes,
)
from ._base import MAX_ENSEMBLE, MEMBER_ATTRS, ModelEstimator, translate

log = logging.getLogger(__name__)

MAP_METHODS = ("pca", "tsne")


# ---------------------------------------------------------------------------- separation of a 2-D map
@contextlib.contextmanager
def _sklearn_threads():
    """One torch thread while scikit-learn runs: torch's OpenMP workers wait busily and starve scikit-learn's
    own OpenMP runtime (measured: t-SNE of 48 points 0.2 s -> 3-70 s, 5-fold kNN 0.06 s -> 1.2 s right after
    torch ran on 2 threads); torch's setting is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def knn_accuracy(coords, y, *, k: int = 5, folds: int = 5, random_state: int = 0) -> float:
    """Mean k-fold cross-validated accuracy of a k-nearest-neighbour classifier predicting ``y`` from
    ``coords``: how well the classes separate in the map (chance is the largest class fraction).

    Folds are stratified (``StratifiedKFold``, shuffled with ``random_state``) when every class has at
    least ``folds`` members, else plain shuffled ``KFold``. Euclidean distance, uniform weights.
    """
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    X = np.asarray(coords, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or len(X) != len(y):
        raise DataError(f"knn_accuracy: coords must be (N, d) with one label per row, got {X.shape} and "
                        f"{len(y)} labels")
    if len(np.unique(y)) < 2:
        raise DataError("knn_accuracy: needs at least two classes in y")
    if len(X) < 2 * folds:
        raise DataError(f"knn_accuracy: {len(X)} samples are too few for {folds}-fold cross-validation; "
                        f"give at least {2 * folds}")
    _, counts = np.unique(y, return_counts=True)
    cv = (StratifiedKFold if counts.min() >= folds else KFold)(n_splits=folds, shuffle=True,
                                                               random_state=random_state)
    n_train = len(X) - math.ceil(len(X) / folds)
    clf = KNeighborsClassifier(n_neighbors=max(1, min(k, n_train)))
    with _sklearn_threads():
        return float(cross_val_score(clf, X, y, cv=cv).mean())


def shifted_copies(x: torch.Tensor) -> torch.Tensor:
    """Images ``x`` ``(N, C, H, W)`` followed by their four one-pixel shifts (down, up, right, left; the row or
    column shifted in is 0): ``(5N, C, H, W)``. What ``LatentExplorer(shift_copies=True)`` trains on."""
    return torch.cat([x, *(translate(x, dx, dy) for dx, dy in ((0, 1), (0, -1), (1, 0), (-1, 0)))])


def standardize_codes(codes) -> np.ndarray:
    """Codes ``(N, L)`` with each dimension centred and scaled to unit standard deviation (N denominator);
    a constant dimension is centred only (divided by 1)."""
    z = np.asarray(codes, dtype=np.float64)
    sd = z.std(0)
    return (z - z.mean(0)) / np.where(sd > 0, sd, 1.0)


# ---------------------------------------------------------------------------- the estimator
class LatentExplorer(ModelEstimator):
    """Interpolation, traversal, arithmetic and 2-D maps in the latent space of a generative model.

    Parameters
    ----------
    model : str, path or GenerativeModel
        A registered model name trained in :meth:`fit` (``vae``, ``ae``, ``cvae``, ... or a GAN), a saved
        model / run folder, or a loaded model. Models with an encoder (autoencoders, VAEs) map inputs to
        codes; GANs only decode codes ``z``. For 2-D maps, ``model="distance-ae"`` (codes trained to keep the
        inputs' distances) with ``model_config={"latent_dim": 64}, epochs=100`` is the one map of codes measured
        at least as separable as the t-SNE map of the pixels on digits on every training seed (docs/apps/latent.md,
        issue 19 ninth round).
    model_config : dict, optional
        Model config when training (e.g. ``{"latent_dim": 2}``).
    epochs, batch_size, random_state, validation_fraction, trainer_config
        Training settings (see :class:`~genlab.apps.ModelEstimator`); ``batch_size`` is also the encode/decode
        batch size.
    verbose : bool or None, default None
        Show the training progress display (scikit-learn's name): ``True`` on, ``False`` off, ``None`` auto
        (on when stderr is a terminal and ``CI`` is not set; ``GENLAB_PROGRESS=1``/``0`` overrides auto).
    n_ensemble : int in [1, 10], default 1
        Models trained by :meth:`fit` (seeds ``random_state``, ``random_state + 1``, ...; each costs one training):
        :meth:`latent_map` maps the codes of all of them side by side (``(N, n_ensemble * latent_dim)``, each
        dimension standardised unless the model is distance-preserving), which averages out one training run's
        accidents.
        Every other method (``encode``, ``interpolate``, ``traverse``, ...) uses ``model_`` (the first) alone.
        Needs a registered, unconditional model name with an encoder.
    shift_copies : bool, default False
        Images only, a model trained by name: :meth:`fit` trains on ``X`` followed by its four one-pixel shifts
        (:func:`shifted_copies`; 5x the data per epoch, so fewer ``epochs`` give the same optimiser steps); the
        codes, the traversal centre and every map are of the unshifted inputs. Not a default; with
        ``latent_map(..., pca_components=32)`` it was the one map of the codes that reached the t-SNE map of the
        pixels on digits, at training seed 0 only (seeds 1 and 2 fall 0.002 short; docs/apps/latent.md, issue 19
        fourth and fifth rounds).

    Attributes
    ----------
    model_ : GenerativeModel
    member_1_, ..., member_9_ : GenerativeModel or None
        With ``n_ensemble > 1``: the further models of the ensemble (seed ``random_state + i``); None otherwise.
    latent_dim_ : int
    has_encoder_ : bool
        False for GANs.
    prior_ : bool
        Whether codes have an N(0, I) prior (VAEs, GANs); autoencoders have none.
    conditional_ : bool
        Whether encode/decode take class labels.
    code_center_, code_scale_ : ndarray (latent_dim,)
        Default traversal centre and unit: 0 and 1 with a prior, else the mean and standard deviation
        (N denominator) of the codes of the training data.
    n_features_in_ : int
        Scalars per sample (``D``, or ``C*H*W`` for images).
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names or a CSV with a header
        (``TensorDataset.columns``); data with other names, or in another order, is then refused.
    """

    default_model = "vae"
    #: codes are decoded by every method; mapping inputs to codes also needs ``has_encoder`` (checked per method)
    _needs = ("has_decoder",)
    _json_state: ClassVar[tuple[str, ...]] = ("latent_dim_", "has_encoder_", "prior_", "conditional_", "model_name_")
    _array_state: ClassVar[tuple[str, ...]] = ("code_center_", "code_scale_")
    #: the ensemble members beyond ``model_`` (``n_ensemble > 1``), saved in ``member_<i>_/``
    _model_state: ClassVar[tuple[str, ...]] = MEMBER_ATTRS

    def __init__(self, *, model="vae", model_config=None, epochs: int = 50, batch_size: int = 128,
                 random_state: int = 0, validation_fraction: float = 0.1, trainer_config=None, verbose=None,
                 n_ensemble: int = 1, shift_copies: bool = False):
        self.model = model
        self.model_config = model_config
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.trainer_config = trainer_config
        self.verbose = verbose
        self.n_ensemble = n_ensemble
        self.shift_copies = shift_copies

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Train (or load) the model on ``X`` and, for autoencoders, record the mean and spread of the training
        codes (the traversal centre and unit). Returns self.

        ``y``: class labels (integers) for training a conditional model by name (``cvae``, ``cgan``,
        ``acgan``); ignored otherwise (unconditional models, and saved or given models, which are not trained)."""
        from ..models import capabilities
        from ..registry import get_model_entry
        self.check_model()
        spec = self._model_param()
        n = self._check_ensemble(spec)
        trains_conditional = self._trains_by_name() and capabilities(get_model_entry(spec).cls)["conditional"]
        shift = getattr(self, "shift_copies", False)
        if not isinstance(shift, (bool, np.bool_)):
            raise ConfigError(f"shift_copies must be True or False, got {shift!r}")
        if shift and not self._trains_by_name():
            raise ConfigError("shift_copies=True trains on shifted copies and needs a registered model name as "
                              "model=, not a saved or given model; use shift_copies=False with it")
        ds = self._dataset(X, y if trains_conditional else None, reset=True)
        train_ds = ds
        if shift:
            if ds.kind != "image":
                raise ConfigError(f"shift_copies=True shifts images by one pixel; got {ds.kind} data "
                                  f"{tuple(ds.x.shape)}; use shift_copies=False with it")
            train_ds = TensorDataset(shifted_copies(ds.x), None if ds.y is None else ds.y.repeat(5), norm=ds.norm,
                                     name=ds.name, classes=ds.classes)
        model = self._fit_model(train_ds)
        self._fit_members(train_ds, n)
        caps = capabilities(model)
        if not caps["can_sample"]:  # no prior: the traversal centre and unit come from the training codes
            self._require(model, needs=("has_encoder",), purpose="LatentExplorer (a model without a prior, whose "
                          "traversal centre is the mean training code)")
        self.latent_dim_ = int(model.latent_dim)
        self.has_encoder_ = caps["has_encoder"]
        self.prior_ = caps["can_sample"]
        self.conditional_ = caps["conditional"]
        self.model_name_ = str(model.registry_name)
        if self.prior_:
            self.code_center_ = np.zeros(self.latent_dim_)
            self.code_scale_ = np.ones(self.latent_dim_)
        else:
            z = self._encode_model(self._to_model(ds), None)  # (N, L) codes of the training data
            self.code_center_ = z.mean(0).numpy().astype(np.float64)
            self.code_scale_ = z.std(0, unbiased=False).numpy().astype(np.float64)
        return self

    def _check_ensemble(self, spec) -> int:
        """``n_ensemble`` checked (an int in [1, MAX_ENSEMBLE]; above 1 only for a registered unconditional model
        name with an encoder, refused before any training)."""
        e = self.n_ensemble
        if isinstance(e, bool) or not isinstance(e, numbers.Integral) or not 1 <= e <= MAX_ENSEMBLE:
            raise ConfigError(f"n_ensemble must be an integer in [1, {MAX_ENSEMBLE}], got {e!r}; e.g. n_ensemble=2")
        if e > 1:
            if not self._trains_by_name():
                raise ConfigError(f"n_ensemble={e} trains {e} models and needs a registered model name as model=, "
                                  "not a saved or given model; use n_ensemble=1 with it")
            from ..models import require
            require(spec, "has_encoder", forbid=("conditional",), purpose=f"LatentExplorer(n_ensemble={e})")
        return int(e)

    # ------------------------------------------------------------------ helpers
    @property
    def _dev(self) -> torch.device:
        return self.model_.device

    def _require_encoder(self, what: str) -> None:
        """Refuse, with :func:`genlab.models.require`'s line, a method that maps inputs to codes when the model
        has no encoder (a GAN: use codes z with interpolate_codes, traverse without x, decode)."""
        self._require(self.model_, needs=("has_encoder",), purpose=f"LatentExplorer.{what}")

    def _batch(self, X, what: str) -> TensorDataset:
        """A batch ``(N, ...)`` of inputs as a dataset of the fitted shape."""
        self._check_fitted()
        ds = self._dataset(X, reset=False, name=what)
        self._check_shape(ds)
        return ds

    def _one(self, x, what: str) -> TensorDataset:
        """One sample (sample shape, ``(H, W)`` for 1-channel images, or a batch of one) as a dataset."""
        self._check_fitted()
        if isinstance(x, TensorDataset):
            ds = x
        else:
            a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            shape = tuple(self.input_shape_)
            if a.shape == shape or (self.kind_ == "image" and shape[0] == 1 and a.shape == shape[1:]):
                a = a[None]
            ds = self._dataset(a, reset=False, name=what)
        if len(ds) != 1:
            raise DataError(f"{what} must be one sample of shape {tuple(self.input_shape_)}, got {len(ds)} samples")
        self._check_shape(ds)
        return ds

    def _group(self, x, what: str) -> TensorDataset:
        """One sample or a batch of samples."""
        a = x if isinstance(x, TensorDataset) else (x.detach().cpu().numpy() if isinstance(x, torch.Tensor)
                                                    else np.asarray(x))
        shape = tuple(self.input_shape_)
        single = not isinstance(a, TensorDataset) and (
            a.shape == shape or (self.kind_ == "image" and shape[0] == 1 and a.shape == shape[1:]))
        return self._one(a, what) if single else self._batch(a, what)

    def _label_tensor(self, labels, n: int, what: str) -> torch.Tensor | None:
        """``(n,)`` int64 labels for conditional models (an int is repeated); None stays None."""
        if not self.conditional_:
            if labels is not None:
                raise ConfigError(f"LatentExplorer.{what}: model {self.model_name_!r} is unconditional and takes no "
                                  "labels; drop labels=")
            return None
        if labels is None:
            return None
        from ..models.vae import check_labels
        lab = labels.detach().cpu() if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
        if lab.ndim == 0:
            lab = lab.reshape(1).expand(n)
        return check_labels(lab, self.model_.num_classes, n, f"LatentExplorer.{what}")

    def _need_labels(self, y, what: str) -> None:
        if self.conditional_ and y is None:
            raise ConfigError(f"LatentExplorer.{what}: conditional model {self.model_name_!r} needs labels= (an int "
                              f"in [0, {self.model_.num_classes - 1}])")

    @torch.no_grad()
    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """Labels a conditional encoder infers for model-space ``x`` (cvae)."""
        self.model_.eval()
        return torch.cat([self.model_.infer_labels(xb.to(self._dev)).cpu()
                          for xb in x.split(int(self.batch_size))])

    @torch.no_grad()
    def _encode_model(self, x: torch.Tensor, y: torch.Tensor | None, m=None) -> torch.Tensor:
        """Codes ``(N, L)`` (posterior means for VAEs) of model-space ``x`` by model ``m`` (default ``model_``),
        float32 on the CPU."""
        m = (self.model_ if m is None else m).eval()
        out = []
        bs = int(self.batch_size)
        for i in range(0, len(x), bs):
            xb = x[i:i + bs].to(self._dev)  # (B, ...)
            z = m.encode(xb, None if y is None else y[i:i + bs].to(self._dev))  # (B, L)
            out.append(z.float().cpu())
        return torch.cat(out)  # (N, L)

    @torch.no_grad()
    def _decode_model(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Model-space decoder means ``(N, *shape)`` of codes ``(N, L)``."""
        m = self.model_.eval()
        out = []
        bs = int(self.batch_size)
        for i in range(0, len(z), bs):
            zb = z[i:i + bs].to(self._dev, torch.float32)  # (B, L)
            x = m.decode(zb) if y is None else m.decode(zb, y[i:i + bs].to(self._dev))
            out.append(x.float().cpu())
        return torch.cat(out)

    def _codes_of(self, ds: TensorDataset, labels, what: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Codes of ``ds`` and the labels used (given, or inferred by a cvae)."""
        self._require_encoder(what)
        x = self._to_model(ds)
        y = self._label_tensor(labels, len(ds), what)
        if self.conditional_ and y is None:
            y = self._infer(x)
        return self._encode_model(x, y), y

    def _code_vector(self, z, what: str) -> torch.Tensor:
        t = z.detach().cpu() if isinstance(z, torch.Tensor) else torch.as_tensor(np.asarray(z))
        t = t.to(torch.float32)
        if t.ndim == 2 and len(t) == 1:
            t = t[0]
        if tuple(t.shape) != (self.latent_dim_,):
            raise DataError(f"{what} must be a code of shape ({self.latent_dim_},), got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise DataError(f"{what} must be finite (no NaN or inf)")
        return t

    # ------------------------------------------------------------------ public API
    def encode(self, X, labels=None) -> np.ndarray:
        """Codes ``(N, latent_dim)`` of a batch ``X`` (VAEs: posterior means). Conditional models take
        ``labels`` (an int or ``(N,)`` ints); ``None`` lets a cvae infer them."""
        self._check_fitted()
        self._require_encoder("encode")
        return self._codes_of(self._batch(X, "X"), labels, "encode")[0].numpy()

    def feature_scale(self) -> np.ndarray | None:
        """Tabular data: the per-feature training standard deviation ``(D,)`` the model standardises by
        (for :func:`plot_interpolation` / :func:`plot_traversal`); None for images."""
        self._check_fitted()
        if self.kind_ != "tabular":
            return None
        return np.broadcast_to(self._norm.scale.numpy().astype(np.float64), tuple(self.input_shape_)).copy()

    def infer_labels(self, X) -> np.ndarray:
        """Classes ``(N,)`` a conditional encoder (cvae) infers for a batch ``X`` (the ones :meth:`encode`,
        :meth:`interpolate` and :meth:`traverse` use when ``labels`` is omitted)."""
        self._check_fitted()
        self._require_encoder("infer_labels")
        if not self.conditional_:
            raise ConfigError(f"LatentExplorer.infer_labels: model {self.model_name_!r} is unconditional and has "
                              "no labels to infer; train a 'cvae'")
        return self._infer(self._to_model(self._batch(X, "X"))).numpy()

    def decode(self, Z, labels=None) -> np.ndarray:
        """Decoder means ``(N, *sample_shape)`` of codes ``Z`` ``(N, latent_dim)`` in the caller's units.
        Conditional models need ``labels`` (an int or ``(N,)`` ints)."""
        self._check_fitted()
        z = Z.detach().cpu() if isinstance(Z, torch.Tensor) else torch.as_tensor(np.asarray(Z))
        if z.ndim != 2 or z.shape[1] != self.latent_dim_:
            raise DataError(f"Z must have shape (N, {self.latent_dim_}), got {tuple(z.shape)}")
        if not torch.isfinite(z.float()).all():
            raise DataError("Z must be finite (no NaN or inf)")
        y = self._label_tensor(labels, len(z), "decode")
        self._need_labels(y, "decode")
        return self._from_model(self._decode_model(z.float(), y))

    def interpolate_codes(self, z_a, z_b, *, steps: int = 8, method: str = "linear", labels=None,
                          return_codes: bool = False):
        """Decode ``steps`` points between codes ``z_a`` and ``z_b`` ``(latent_dim,)`` (works for GANs).

        Returns ``(steps, *sample_shape)``, and the codes ``(steps, latent_dim)`` with ``return_codes``.
        Conditional models decode the whole path with ``labels`` (one int).
        """
        self._check_fitted()
        fn = interpolator(method)
        steps = check_steps(steps)
        za, zb = self._code_vector(z_a, "z_a"), self._code_vector(z_b, "z_b")
        y = self._label_tensor(labels, steps, "interpolate_codes")
        self._need_labels(y, "interpolate_codes")
        z = fn(za, zb, steps)  # (S, L)
        out = self._from_model(self._decode_model(z, y))
        return (out, z.numpy()) if return_codes else out

    def interpolate(self, x_a, x_b, *, steps: int = 8, method: str = "linear", labels=None,
                    return_codes: bool = False):
        """Decode ``steps`` points on the path between the codes of inputs ``x_a`` and ``x_b``.

        ``method``: ``"linear"`` (:func:`lerp`) or ``"spherical"`` (:func:`slerp`). The first frame is
        ``decode(encode(x_a))`` and the last ``decode(encode(x_b))``. Conditional models encode both inputs
        and decode the path with one class: ``labels`` (an int), else the class a cvae infers for ``x_a``.

        Returns
        -------
        ndarray ``(steps, *sample_shape)``; with ``return_codes`` also the codes ``(steps, latent_dim)``.
        """
        self._check_fitted()
        self._require_encoder("interpolate")
        fn = interpolator(method)
        steps = check_steps(steps)
        a, b = self._one(x_a, "x_a"), self._one(x_b, "x_b")
        if self.conditional_ and labels is None:
            labels = int(self._infer(self._to_model(a))[0])
        za = self._codes_of(a, labels, "interpolate")[0][0]
        zb = self._codes_of(b, labels, "interpolate")[0][0]
        y = self._label_tensor(labels, steps, "interpolate")
        z = fn(za, zb, steps)  # (S, L)
        out = self._from_model(self._decode_model(z, y))
        return (out, z.numpy()) if return_codes else out

    def traverse(self, x=None, *, z=None, dims=None, span: float = 3.0, steps: int = 7, labels=None,
                 return_codes: bool = False):
        """Vary one latent dimension at a time around a centre code and decode.

        The centre is the code of ``x`` (one input), or ``z`` (a code), else the default centre
        ``code_center_`` (prior mean 0, or the mean training code of an autoencoder). Dimension ``d`` takes
        ``centre[d] + o * code_scale_[d]`` for ``o`` in ``linspace(-span, span, steps)`` (``span`` in prior
        std units for VAEs/GANs, training-code std units for autoencoders); the other dimensions stay fixed.

        Parameters
        ----------
        dims : sequence of int, optional
            Latent dimensions to traverse (default all, in order).
        labels : int, optional
            Class for conditional models (a cvae infers it from ``x`` when omitted).

        Returns
        -------
        ndarray ``(len(dims), steps, *sample_shape)``; with ``return_codes`` also the codes
        ``(len(dims), steps, latent_dim)``.
        """
        self._check_fitted()
        steps = check_steps(steps)
        span = check_span(span)
        if x is not None and z is not None:
            raise ConfigError("traverse takes x (an input) or z (a code), not both")
        if dims is None:
            dims = list(range(self.latent_dim_))
        else:
            dims = [dims] if isinstance(dims, (int, np.integer)) else list(dims)
            bad = [d for d in dims if isinstance(d, bool) or not isinstance(d, (int, np.integer))
                   or not 0 <= d < self.latent_dim_]
            if bad or not dims:
                raise ConfigError(f"dims must be latent dimensions in [0, {self.latent_dim_ - 1}], got {bad or dims}")
            dims = [int(d) for d in dims]
        if x is not None:
            self._require_encoder("traverse(x=...)")
            ds = self._one(x, "x")
            if self.conditional_ and labels is None:
                labels = int(self._infer(self._to_model(ds))[0])
            center = self._codes_of(ds, labels, "traverse")[0][0]
        elif z is not None:
            center = self._code_vector(z, "z")
        else:
            center = torch.as_tensor(np.asarray(self.code_center_), dtype=torch.float32)
        scale = torch.as_tensor(np.asarray(self.code_scale_), dtype=torch.float32)
        codes = traversal_codes(center, scale, dims, span=span, steps=steps)  # (K, S, L)
        y = self._label_tensor(labels, len(dims) * steps, "traverse")
        self._need_labels(y, "traverse")
        flat = self._decode_model(codes.reshape(-1, self.latent_dim_), y)  # (K*S, *shape)
        out = self._from_model(flat).reshape(len(dims), steps, *flat.shape[1:])
        return (out, codes.numpy()) if return_codes else out

    def arithmetic(self, a, b, c, *, labels=None, return_codes: bool = False):
        """``decode(z(a) - z(b) + z(c))``.

        Each of ``a``, ``b``, ``c`` is one input or a batch of inputs; the code of a batch is the mean of its
        codes (as in DCGAN's averaged "smiling woman - neutral woman + neutral man"). Conditional models encode
        and decode with ``labels`` (an int); without it a cvae encodes each input with its inferred class and
        decodes with the class inferred for the first input of ``c``.

        Returns
        -------
        ndarray ``sample_shape``; with ``return_codes`` also the code ``(latent_dim,)``.
        """
        self._check_fitted()
        self._require_encoder("arithmetic")
        zs, ys = [], []
        for v, name in ((a, "a"), (b, "b"), (c, "c")):
            zz, yy = self._codes_of(self._group(v, name), labels, "arithmetic")  # (N, L)
            zs.append(zz)
            ys.append(yy)
        z = code_arithmetic(*zs)  # (L,) mean(a) - mean(b) + mean(c)
        y = None if ys[2] is None else ys[2][:1]
        out = self._from_model(self._decode_model(z[None], y))[0]
        return (out, z.numpy()) if return_codes else out

    def standardizes_codes(self, standardize: bool | str = "auto") -> bool:
        """Whether :meth:`latent_map` standardises the codes for this ``standardize`` (``"auto"``: unless the fitted
        model declares ``distance_preserving``); anything but ``"auto"``, True or False is a ``ConfigError``."""
        self._check_fitted()
        if isinstance(standardize, (bool, np.bool_)):
            return bool(standardize)
        if isinstance(standardize, str) and standardize == "auto":
            return not self.model_.distance_preserving
        raise ConfigError(f"standardize must be 'auto', True or False, got {standardize!r}")

    def latent_map(self, X, y=None, *, method: str = "pca", random_state: int = 0,
                   standardize: bool | str = "auto", pca_components: int | None = None) -> np.ndarray:
        """2-D coordinates ``(N, 2)`` of the codes of ``X``.

        ``method="pca"``: the codes projected on their first two principal components
        (``sklearn.decomposition.PCA``, full SVD; a 1-D latent space gives a zero second column).
        ``method="tsne"``: ``sklearn.manifold.TSNE(init="pca", perplexity=min(30, (N - 1) / 3),
        random_state=random_state)``. ``y`` is used only by conditional encoders (a cvae encodes with the true
        labels when given, else with inferred ones); the map itself is unsupervised.

        ``standardize`` (``"auto"``, True or False): ``True`` scales each code dimension to unit standard deviation
        over ``X`` before a t-SNE map (:func:`standardize_codes`), so that t-SNE's distances do not follow the few
        widest code dimensions. ``"auto"`` (the default) standardises unless the model keeps the inputs' distances
        in its codes (``model.distance_preserving``: ``distance-ae``), whose codes are mapped as they are. Both
        chosen on a digits-like selection set built from mnist5k, not on the digits table of the docs
        (``bench/latent_select.py``: standardising is better for conv AEs and, by 0.05, for VAEs; for
        ``distance-ae`` the raw codes were as good or better in all six settings measured). PCA maps never
        standardise (PCA of the codes as they are).

        ``pca_components`` (default None; t-SNE only): an int ``K`` in [2, code width]: t-SNE maps the first ``K``
        principal components of the (standardised) codes (``PCA(K, svd_solver="full")``, not whitened) instead of
        the codes themselves. Not a default: on the selection set it helped alone by 0.0015 (K = 32 of 64), and
        together with an AE trained on one-pixel-shifted copies by 0.005 (docs/apps/latent.md, issue 19 fourth
        round).

        With ``n_ensemble > 1`` "the codes" are the codes of every member side by side, ``(N, n_ensemble *
        latent_dim)`` (model order: ``model_``, ``member_1_``, ...), mapped as above.
        """
        self._check_fitted()
        if method not in MAP_METHODS:
            raise ConfigError(f"unknown map method {method!r}; use 'pca' or 'tsne'")
        std = self.standardizes_codes(standardize)  # checked before any encoding
        if pca_components is not None:
            if method != "tsne":
                raise ConfigError(f"pca_components goes with method='tsne', not method={method!r}; "
                                  "use pca_components=None with it")
            if isinstance(pca_components, (bool, np.bool_)) or not isinstance(pca_components, (int, np.integer)) \
                    or pca_components < 2:
                raise ConfigError(f"pca_components must be None or an integer >= 2, got {pca_components!r}; "
                                  "e.g. pca_components=32")
        self._require_encoder("latent_map")
        ds = self._batch(X, "X")
        if len(ds) < 2:
            raise DataError(f"latent_map needs at least 2 samples, got {len(ds)}")
        codes = self._codes_of(ds, y if self.conditional_ else None, "latent_map")[0].numpy().astype(np.float64)
        members = self._members()
        if len(members) > 1:  # the ensemble's codes side by side: (N, n_ensemble * L)
            x = self._to_model(ds)
            codes = np.hstack([codes, *(self._encode_model(x, None, m).numpy().astype(np.float64)
                                        for m in members[1:])])
        if method == "pca":
            from sklearn.decomposition import PCA
            k = min(2, codes.shape[1], len(codes))
            with _sklearn_threads():
                xy = PCA(n_components=k, svd_solver="full").fit_transform(codes)
            if k < 2:
                xy = np.hstack([xy, np.zeros((len(xy), 2 - k))])
            return xy
        from sklearn.manifold import TSNE
        if std:
            codes = standardize_codes(codes)
        if pca_components is not None:
            from sklearn.decomposition import PCA
            width = min(codes.shape[1], len(codes))
            if pca_components > width:
                raise ConfigError(f"pca_components must be in [2, {width}] (the code width and the number of "
                                  f"samples), got {pca_components}")
            with _sklearn_threads():
                codes = PCA(n_components=int(pca_components), svd_solver="full").fit_transform(codes)
        perplexity = float(min(30.0, max(1.0, (len(codes) - 1) / 3)))
        with _sklearn_threads():
            return TSNE(n_components=2, init="pca", perplexity=perplexity,
                        random_state=random_state).fit_transform(codes).astype(np.float64)
