"""Anomaly detection with autoencoders and VAEs, following scikit-learn's outlier-detector API.

Sign convention (scikit-learn's, as in ``IsolationForest``): :meth:`AnomalyDetector.score_samples` is
**higher for more normal samples**; ``decision_function = score_samples - offset_`` is negative for
outliers; ``predict`` gives ``+1`` (inlier) or ``-1`` (outlier), with ``-1`` exactly where
``decision_function < 0``.

Scores (all per sample, deterministic: the same input always gets the same score, whatever else is in
the batch):

* ``"auto"`` (the default): ``"relative_reconstruction"`` for images; for tabular data
  ``"standardized_reconstruction"`` plus three times the Mahalanobis term of ``latent_score`` (below); with a model
  trained by name, averaged over an ensemble of 3 (``n_ensemble``, below); the score used is ``scoring_`` (and
  ``latent_score_``, ``n_ensemble_``) after :meth:`AnomalyDetector.fit`.
* ``"reconstruction"``: minus the mean squared reconstruction error over all features,
  ``-mean_j (x_j - r_j)^2``, in model space (images in [0, 1]; tabular columns standardised by the
  model's training mean and standard deviation). ``r`` is ``model.reconstruct(x)``, i.e. the decoder mean
  at the posterior mean for a VAE.
* ``"relative_reconstruction"`` (images): the reconstruction error corrected for the input's complexity
  (in the spirit of Serra et al. 2020, "Input complexity and out-of-distribution detection"),
  ``-log(mse(x, r) + 1e-12) + 0.5 * log(mean_j x_j^2 + 1e-12)`` with ``mse`` as for ``"reconstruction"``: an image
  with little ink (a "1" for a model of "8"s) reconstructs with a small error whatever the model, and the
  second term takes that advantage back. The exponent 0.5 is the best of {0, 0.25, 0.5, 0.75, 1}
  with PCA reconstructions inside the benchmark's training split of mnist5k (a 75/25 cut of it; the test split is
  not read): mean ROC-AUC 0.949 / 0.963 / 0.969 / 0.966 / 0.956 (``bench/anomaly_exponent.py``).
* ``"standardized_reconstruction"``: ``-mean_j ((x_j - r_j) / s_j)^2`` with ``s_j`` the root mean square of
  feature ``j``'s residual on the training data (model space) plus ``1e-3``: a feature the model reconstructs well
  on normal data weighs more when it fails.
* ``latent_score="mahalanobis"`` (with any reconstruction score; the tabular default through ``"auto"``): a Gaussian
  with the Ledoit-Wolf covariance is fitted to the training codes ``encode(x)``, and the score becomes
  ``(a(x) - mean_a) / std_a + w * (b(x) - mean_b) / std_b`` with ``a`` the reconstruction score, ``b`` minus the
  squared Mahalanobis distance of the code, ``w = latent_weight`` (default 3), and the means and (population)
  standard deviations taken over the training data: a sample that reconstructs well but whose code lies where no
  normal code lies is flagged too.
  Chosen for tabular data on scikit-learn's ``wine`` (one-class, each cultivar normal in turn; the breast-cancer
  table's anomalies are all in its test set): mean ROC-AUC 0.987 against 0.956 for the plain MSE
  (``bench/anomaly_select.py``); on images it did not help at the benchmark's training lengths there. The weight 3
  (was 1) was chosen on ``wine`` and ``iris`` with ensembles of 3: mean over 3 seeds 0.9801 / 0.9841 / 0.9843 /
  0.9839 on wine and 0.9748 / 0.9777 / 0.9786 / 0.9788 on iris for weights 1 / 2 / 3 / 4.
* ``n_ensemble`` (``"auto"``: 3 for ``scoring="auto"`` with a model trained by name, else 1): ``fit`` trains that many
  models with seeds ``random_state + i`` and the score is the mean over them of each model's score standardised by
  its mean and (population) standard deviation on the training data (``ensemble_scale_``); one model's score is
  used as it is. Chosen inside the benchmark's training splits and on wine (``bench/anomaly_select.py --seeds 3``):
  mean ROC-AUC of 3 single seeds vs their ensemble, mnist5k 0.9683 vs 0.9698, digits 0.9960 vs 0.9965, wine 0.9843
  vs 0.9877 (iris 0.9786 vs 0.9777).
* ``"elbo"`` (VAEs): the ELBO in nats, ``mean_k log p(x | z_k) - KL(q(z|x) || p(z))`` with
  ``z_k = mu(x) + sigma(x) * eps_k``, averaged over ``n_samples`` draws ``eps_k``. The ``eps_k`` are drawn
  once per call from ``torch.Generator().manual_seed(random_state)`` and shared by every input (common
  random numbers), so a score depends only on the input.
* ``"iwae"`` (VAEs): the importance-weighted bound on ``log p(x)`` (Burda et al. 2016) with
  ``k = n_samples`` importance samples drawn the same way, ``logsumexp_k log w_k - log k`` in float64.
* ``"likelihood"`` (models with an exact likelihood and no encoder, e.g. ``pixelcnn``): the exact ``log p(x)`` in
  nats, ``model.log_likelihood(x)`` (no sampling; ``n_samples`` is unused). ``reconstruct``/``error_maps`` need a
  model that reconstructs.
* ``"likelihood_ratio"`` (the same models as ``"likelihood"``): ``log p(x) - log p_bg(x)`` (Ren et al. 2019,
  "Likelihood ratios for out-of-distribution detection"). The background model ``background_`` is the same
  model (name and config) trained on the same data after a perturbation that destroys the semantic content
  but keeps the low-level statistics: each pixel independently, with probability ``mutation_rate``, is
  replaced by a level drawn uniformly from the model's levels ``0..S`` (``S`` the data's scale, e.g. 16 for
  ``digits``, 255 for 8-bit images), with ``torch.Generator().manual_seed(random_state)``.
"""
from __future__ import annotations

import logging
import math
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import OutlierMixin

from ..errors import ConfigError, DataError
from ._base import MAX_ENSEMBLE, MEMBER_ATTRS, ModelEstimator

log = logging.getLogger(__name__)

#: valid values of ``scoring`` and what each needs from the model
SCORES = ("auto", "reconstruction", "relative_reconstruction", "elbo", "iwae", "likelihood", "likelihood_ratio",
          "standardized_reconstruction")
#: scores computed from ``model.reconstruct``
_RECON = ("auto", "reconstruction", "relative_reconstruction", "standardized_reconstruction")
#: valid values of ``latent_score`` (None: no latent term)
LATENT_SCORES = ("auto", None, "mahalanobis")
#: default weight of the (standardised) latent term against the (standardised) reconstruction term
LATENT_WEIGHT = 3.0
#: floor of the per-feature residual scale of ``standardized_reconstruction`` (model units)
_SCALE_EPS = 1e-3
#: scores computed from an exact ``log_likelihood`` of an encoder-free model
_EXACT = ("likelihood", "likelihood_ratio")
#: floor inside the logs of ``relative_reconstruction``
_LOG_EPS = 1e-12
#: threshold rules of :meth:`AnomalyDetector.calibrate`
CRITERIA = ("f1", "youden")
#: inputs scored per forward pass (times ``n_samples`` for the likelihood scores)
_CHUNK = 4096
#: ``n_ensemble="auto"`` per kind of data (for a model trained by name; a saved or given model is one member)
AUTO_ENSEMBLE = {"tabular": 3, "image": 3}


def _renamed_score(deprecated: dict, scoring, where: str):
    """``scoring``, or the value of the deprecated ``score`` keyword (with a FutureWarning); other unknown
    keywords are a TypeError as for any function."""
    deprecated = dict(deprecated)
    if "score" in deprecated:
        warnings.warn(f"{where}(score=...) is deprecated and will be removed in a future genlab version; "
                      "use scoring=... (the same values)", FutureWarning, stacklevel=3)
        scoring = deprecated.pop("score")
    if deprecated:
        raise TypeError(f"{where} got an unexpected keyword argument {next(iter(deprecated))!r}")
    return scoring


class AnomalyDetector(OutlierMixin, ModelEstimator):
    """Outlier detector from an autoencoder or VAE trained on (mostly) normal data.

    Parameters
    ----------
    model : str, path or GenerativeModel, default "ae"
        A registered model name trained in :meth:`fit` (``ae``, ``sparse-ae``, ``denoising-ae``,
        ``contractive-ae``, ``vae``, ...), a saved model / run folder, or a loaded model (then ``fit``
        only sets the threshold).
    model_config : dict, optional
        Model config when training by name, e.g. ``{"latent_dim": 8}``.
    scoring : {"auto", "reconstruction", "relative_reconstruction", "elbo", "iwae", "likelihood", \
"likelihood_ratio"}, default "auto"
        What :meth:`score_samples` returns (see the module docstring); ``auto`` is ``relative_reconstruction``
        for images and ``reconstruction`` for tabular data; ``elbo`` and ``iwae`` need a VAE, ``likelihood`` and
        ``likelihood_ratio`` an exact-likelihood model (``pixelcnn``).
        (Called ``score`` in genlab 0.1.0; ``score=`` still works with a ``FutureWarning`` and will be
        removed: an attribute ``score`` shadowed scikit-learn's ``score`` method.)
    latent_score : {"auto", None, "mahalanobis"}, default "auto"
        A term on the code ``encode(x)`` added to a reconstruction score (standardised sum, module docstring):
        ``"auto"`` adds the Mahalanobis term for ``scoring="auto"`` on tabular data (with a model that encodes
        without labels) and nothing otherwise; ``None`` never; ``"mahalanobis"`` always (needs ``has_encoder``).
    latent_weight : float > 0, default 3.0
        Weight of the standardised latent term against the standardised reconstruction term (module docstring).
    n_ensemble : "auto" or int in [1, 10], default "auto"
        Models trained by :meth:`fit` (seeds ``random_state + i``) whose standardised scores are averaged; ``"auto"``
        is 3 for ``scoring="auto"`` with a model trained by name and 1 otherwise (module docstring). Each member
        costs one training; above 1 needs a registered model name (not a saved or given model) and refuses
        ``likelihood_ratio``.
    contamination : float in (0, 0.5], default 0.1
        Expected fraction of outliers in the training data: ``offset_`` is the ``contamination`` quantile
        of the training scores (``numpy.percentile``, linear interpolation), as in scikit-learn's
        ``IsolationForest``. :meth:`calibrate` replaces it with a threshold chosen on labelled data.
    mutation_rate : float in (0, 1), default 0.2
        ``scoring="likelihood_ratio"``: the share of pixels replaced by random levels in the background
        model's training data (Ren et al. 2019 used 0.1-0.3).
    n_samples : int, default 16
        Posterior draws per input for ``scoring="elbo"`` (averaged) and ``"iwae"`` (importance samples).
    epochs, batch_size, validation_fraction, trainer_config
        Training of the wrapped model (see :class:`genlab.apps.ModelEstimator`).
    verbose : bool or None, default None
        Show the training progress display (scikit-learn's name): ``True`` on, ``False`` off, ``None`` auto
        (on when stderr is a terminal and ``CI`` is not set; ``GENLAB_PROGRESS=1``/``0`` overrides auto).
    random_state : int, default 0
        Seed of training and of the fixed draws of the ``elbo``/``iwae`` scores.

    Attributes
    ----------
    model_ : GenerativeModel
        The wrapped model (eval mode).
    scoring_ : str
        The score in use (``scoring`` with ``"auto"`` resolved).
    latent_score_ : str or None
        The latent term in use (``latent_score`` with ``"auto"`` resolved).
    score_params_ : dict
        What the score took from the training data: ``feature_scale`` (``standardized_reconstruction``),
        ``location`` / ``precision`` of the codes' Gaussian and ``recon_mean``, ``recon_std``, ``latent_mean``,
        ``latent_std`` (with a latent term); empty otherwise.
    n_ensemble_ : int
        The number of models in use (``n_ensemble`` with ``"auto"`` resolved).
    member_1_, ..., member_9_ : GenerativeModel or None
        The further models of an ensemble (seed ``random_state + i``), None beyond ``n_ensemble_``.
    member_params_ : list of dict
        ``score_params_`` of each further member.
    ensemble_scale_ : list of [mean, std]
        Each member's training-score mean and standard deviation (``[]`` for one model).
    background_ : GenerativeModel or None
        ``scoring="likelihood_ratio"``: the background model (eval mode); else None.
    offset_ : float
        Threshold on ``score_samples``: samples with ``score_samples(x) < offset_`` are outliers.
    train_scores_ : ndarray of shape (n_train,)
        ``score_samples`` of the data given to :meth:`fit` (kept so the threshold can be moved later).
    threshold_source_ : str
        ``"contamination"``, or the criterion used by :meth:`calibrate` (``"f1"`` / ``"youden"``).
    calibration_ : dict
        What :meth:`calibrate` achieved on its validation data (empty otherwise).
    input_shape_, kind_
        Shape of one sample and ``"image"`` / ``"tabular"``.
    n_features_in_ : int
        Scalars per sample (``D``, or ``C*H*W`` for images).
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names or a CSV with a header
        (``TensorDataset.columns``); data with other names, or in another order, is then refused.

    Examples
    --------
    >>> det = AnomalyDetector(model="ae", contamination=0.05, epochs=30).fit(X_normal)
    >>> det.predict(X_test)                # +1 inlier, -1 outlier
    >>> det.error_maps(X_test[:4]).shape   # (4, H, W) for images
    """

    default_model = "ae"
    #: every score needs ``reconstruct`` (also for :meth:`reconstruct` / :meth:`error_maps`); ``elbo``/``iwae``
    #: need the likelihood (``posterior``) of an unconditional model (see :meth:`_requirements`)
    _needs = ("can_reconstruct",)
    _json_state = ("offset_", "threshold_source_", "calibration_", "scoring_", "latent_score_", "score_params_",
                   "member_params_", "ensemble_scale_", "n_ensemble_")
    #: the background model of ``likelihood_ratio`` and the ensemble members beyond ``model_`` (``member_<i>_``)
    _model_state = ("background_", *MEMBER_ATTRS)
    _array_state = ("train_scores_",)

    def __init__(self, *, model="ae", model_config=None, scoring="auto", latent_score="auto", contamination=0.1,
                 latent_weight=LATENT_WEIGHT, n_samples=16, mutation_rate=0.2, n_ensemble="auto", epochs=30,
                 batch_size=128, random_state=0, validation_fraction=0.1, trainer_config=None, verbose=None,
                 **deprecated):
        # ``score=`` was renamed ``scoring=`` (an attribute ``score`` shadows scikit-learn's ``score`` method);
        # it is taken through ``**deprecated`` so it is no parameter (get_params/clone see ``scoring`` only)
        scoring = _renamed_score(deprecated, scoring, "AnomalyDetector")
        self.model = model
        self.model_config = model_config
        self.scoring = scoring
        self.latent_score = latent_score
        self.latent_weight = latent_weight
        self.contamination = contamination
        self.n_samples = n_samples
        self.mutation_rate = mutation_rate
        self.n_ensemble = n_ensemble
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.trainer_config = trainer_config
        self.verbose = verbose

    def set_params(self, **params):
        """scikit-learn's ``set_params``; the deprecated ``score=`` sets ``scoring`` (with a FutureWarning)."""
        if "score" in params:
            params["scoring"] = _renamed_score({"score": params.pop("score")}, params.get("scoring"),
                                               "AnomalyDetector.set_params")
        return super().set_params(**params)

    @classmethod
    def _upgrade_params(cls, params: dict) -> dict:
        if "score" in params:  # estimator.json written before the rename
            params["scoring"] = params.pop("score")
        params.setdefault("latent_weight", 1.0)  # written before the weight existed: the terms weighed the same
        return params

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_contamination(c) -> float:
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0.0 < float(c) <= 0.5:
            raise ConfigError(f"contamination must be a number in (0, 0.5], got {c!r}; e.g. contamination=0.1 "
                              "(or set the threshold from labelled data with calibrate)")
        return float(c)

    def _check_params(self) -> None:
        if self.scoring not in SCORES:
            raise ConfigError(f"scoring={self.scoring!r} is not valid; valid scores: {', '.join(SCORES)}")
        if self.latent_score not in LATENT_SCORES:
            raise ConfigError(f"latent_score={self.latent_score!r} is not valid; use 'auto', None or 'mahalanobis'")
        if self.latent_score == "mahalanobis" and self.scoring not in _RECON:
            raise ConfigError(f"latent_score='mahalanobis' adds to a reconstruction score, not to "
                              f"scoring={self.scoring!r}; use latent_score=None (or 'auto') with it")
        self._check_contamination(self.contamination)
        w = self.latent_weight
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not 0.0 < float(w) < math.inf:
            raise ConfigError(f"latent_weight must be a finite number > 0, got {w!r}; e.g. latent_weight=3")
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, numbers.Integral) \
                or self.n_samples < 1:
            raise ConfigError(f"n_samples must be an integer >= 1, got {self.n_samples!r}")
        r = self.mutation_rate
        if isinstance(r, bool) or not isinstance(r, numbers.Real) or not 0.0 < float(r) < 1.0:
            raise ConfigError(f"mutation_rate must be a number in (0, 1), got {r!r}; e.g. mutation_rate=0.2")
        e = self.n_ensemble
        if e == "auto":
            e = 1
        elif isinstance(e, bool) or not isinstance(e, numbers.Integral) or not 1 <= e <= MAX_ENSEMBLE:
            raise ConfigError(f"n_ensemble must be 'auto' or an integer in [1, {MAX_ENSEMBLE}], got {e!r}; e.g. "
                              "n_ensemble=3")
        if e > 1 and self.scoring == "likelihood_ratio":
            raise ConfigError("n_ensemble > 1 does not combine with scoring='likelihood_ratio' (one background "
                              "model per member is not implemented); use n_ensemble=1")
        if e > 1 and not self._trains_by_name():
            raise ConfigError(f"n_ensemble={e} trains {e} models and needs a registered model name as model=, not a "
                              "saved or given model; use n_ensemble=1 with it")
        self.check_model()  # fail before training, not after

    def _requirements(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if self.latent_score == "mahalanobis":  # the code of x alone: ``encode`` without labels
            return (*self._needs, "has_encoder"), ("conditional",)
        if self.scoring in ("elbo", "iwae"):  # the likelihood of x alone: no labels to condition on
            return (*self._needs, "has_likelihood"), ("conditional",)
        if self.scoring in _EXACT:  # the exact log p(x) of an encoder-free model (pixelcnn)
            return ("has_likelihood",), ("conditional", "has_encoder")
        return tuple(self._needs), ()

    def _purpose(self) -> str:
        # ``auto`` needs what the reconstruction scores need; name the family in refusals
        return f"AnomalyDetector(scoring={'reconstruction' if self.scoring == 'auto' else self.scoring!r})"

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Train (or take) the model on ``X`` and set the threshold from ``contamination``.

        Parameters
        ----------
        X : array-like of shape (N, C, H, W), (N, H, W) or (N, D), or a TensorDataset
            (Mostly) normal training data.
        y : ignored
            Present for API consistency (labels are never used in training).

        Returns
        -------
        self
        """
        self._check_params()
        ds = self._dataset(X, reset=True)
        if len(ds) < 2:  # the score's spreads and the threshold (a percentile) need at least two normal samples
            raise DataError(f"X has {len(ds)} sample; an anomaly detector needs at least 2 normal samples to fit (its "
                            "scores are standardised by their spread and the threshold is a percentile of them)")
        if self.scoring == "relative_reconstruction" and ds.kind != "image":
            raise DataError("scoring='relative_reconstruction' needs image data; for tabular data use "
                            "scoring='reconstruction' (or 'auto')")
        if self.scoring == "likelihood_ratio" and ds.kind != "image":
            raise DataError("scoring='likelihood_ratio' perturbs pixels and needs image data; use "
                            "scoring='likelihood' for other data")
        self._fit_model(ds)
        self.scoring_ = self._resolved_scoring(ds.kind)
        self.latent_score_ = self._resolved_latent(ds.kind)
        self.background_ = self._fit_background(ds) if self.scoring_ == "likelihood_ratio" else None
        self.n_ensemble_ = n = self._resolved_ensemble(ds.kind)
        self._fit_members(ds, n)
        xm = self._to_model(ds)
        fitted = [self._score_params(m, xm) for m in self._members()]  # (params, training scores) per member
        self.score_params_ = fitted[0][0]
        self.member_params_ = [p for p, _ in fitted[1:]]
        raw = [r for _, r in fitted]
        self.ensemble_scale_ = []
        if n > 1:  # each member's score standardised by its mean and spread on the training data
            self.ensemble_scale_ = [[float(r.mean()), float(r.std() or 1.0)] for r in raw]
            self.train_scores_ = np.mean([(r - mu) / sd for r, (mu, sd) in zip(raw, self.ensemble_scale_)], axis=0)
        else:
            self.train_scores_ = raw[0]
        self.offset_ = self._contamination_offset(self.contamination)
        self.threshold_source_ = "contamination"
        self.calibration_ = {}
        log.info("AnomalyDetector: %s score, offset %.6g from contamination %.3g on %d samples", self.scoring_,
                 self.offset_, self.contamination, len(ds))
        return self

    def _resolved_ensemble(self, kind: str) -> int:
        """``n_ensemble`` with ``"auto"`` resolved: :data:`AUTO_ENSEMBLE` of the data's kind for ``scoring="auto"``
        with a model trained by name, else 1."""
        if self.n_ensemble != "auto":
            return int(self.n_ensemble)
        if not self._trains_by_name() or self.scoring != "auto":
            return 1
        return AUTO_ENSEMBLE[kind]

    def _params(self) -> list[dict]:
        """The score parameters of each member of :meth:`_members`, in the same order."""
        return [getattr(self, "score_params_", None) or {}, *(getattr(self, "member_params_", None) or [])]

    def _resolved_scoring(self, kind: str) -> str:
        if self.scoring != "auto":
            return self.scoring
        return "relative_reconstruction" if kind == "image" else "standardized_reconstruction"

    def _resolved_latent(self, kind: str) -> str | None:
        """``latent_score`` with ``"auto"`` resolved: the Mahalanobis term for ``scoring="auto"`` on tabular data
        with a model that encodes without labels, no latent term otherwise."""
        if self.latent_score != "auto":
            return self.latent_score
        if self.scoring != "auto" or kind == "image":
            return None
        m = self.model_
        ok = getattr(m, "has_encoder", False) and not getattr(m, "conditional", False)
        return "mahalanobis" if ok else None

    def _model64(self, m):
        """A float64 copy of the model ``m`` (eval mode), for the scores with a latent term: their standardisation
        divides by small spreads, where float32 rounding that depends on the batch size would show (a score must
        not depend on what else is in the batch). It reconstructs as ``decode(encode(x))`` (``reconstruct`` casts
        its input to float32), which is what ``reconstruct`` computes for genlab's autoencoders and VAEs."""
        import copy
        self._require(m, needs=("has_encoder",), purpose="AnomalyDetector(latent_score='mahalanobis')")
        return copy.deepcopy(m).double().eval()

    @staticmethod
    @torch.no_grad()
    def _codes_and_recon(m64, xm: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """The float64 copy's codes ``encode(x)`` ``(N, L)`` and reconstructions ``decode(encode(x))`` (what
        ``reconstruct`` computes) of ``xm``, each input encoded once."""
        codes, recon = [], []
        for xb in xm.split(_CHUNK):
            z = m64.encode(xb.to(m64.device, torch.float64))
            codes.append(z.double().cpu())
            recon.append(m64.decode(z).cpu())
        return torch.cat(codes).numpy(), torch.cat(recon)

    @staticmethod
    def _feature_scale(recon: torch.Tensor, xm: torch.Tensor) -> list[float]:
        """``standardized_reconstruction``'s per-feature scale: the root mean square training residual + 1e-3."""
        res = (recon.double() - xm.double()).flatten(1)  # (N, D)
        return (res.pow(2).mean(0).sqrt() + _SCALE_EPS).tolist()

    def _score_params(self, m, xm: torch.Tensor) -> tuple[dict, np.ndarray]:
        """What the score of model ``m`` needs from the training data ``xm`` (model space), and ``m``'s score of
        ``xm`` (``(N,)``, what :meth:`_raw_scores` gives with these parameters; each input reconstructed and encoded
        once): the per-feature residual scale of ``standardized_reconstruction``; for a latent term, the Gaussian of
        the training codes (Ledoit-Wolf) and the mean and standard deviation of both terms on the training data,
        which put them on one scale."""
        params: dict = {}
        if self.scoring_ not in _RECON:
            return params, self._raw_scores(m, params, xm)
        if self.latent_score_ is None:
            recon = self._reconstruct(xm, m).double()
            if self.scoring_ == "standardized_reconstruction":
                params["feature_scale"] = self._feature_scale(recon, xm)
            return params, self._recon_term(xm, params, recon)
        from sklearn.covariance import LedoitWolf
        codes, recon = self._codes_and_recon(self._model64(m), xm)
        if self.scoring_ == "standardized_reconstruction":  # the residual scale from the float64 reconstructions
            params["feature_scale"] = self._feature_scale(recon, xm)
        lw = LedoitWolf().fit(codes)
        params.update(location=lw.location_.tolist(), precision=lw.precision_.tolist())
        rec, lat = self._recon_term(xm, params, recon), self._latent_term(codes, params)
        params.update(recon_mean=float(rec.mean()), recon_std=float(rec.std() or 1.0),
                      latent_mean=float(lat.mean()), latent_std=float(lat.std() or 1.0))
        return params, self._combined(rec, lat, params)

    def _combined(self, rec: np.ndarray, lat: np.ndarray, params: dict) -> np.ndarray:
        """The score with a latent term: the reconstruction term ``rec`` and the latent term ``lat`` (``(N,)``
        each), each standardised by its training mean and standard deviation in ``params``, summed with the latent
        one weighted by ``latent_weight``."""
        w = float(getattr(self, "latent_weight", 1.0))
        return (rec - params["recon_mean"]) / params["recon_std"] + \
            w * (lat - params["latent_mean"]) / params["latent_std"]

    def _fit_background(self, ds):
        """The background model of ``likelihood_ratio``: the wrapped model's name and config trained on ``ds``
        with a share ``mutation_rate`` of its pixels replaced by uniformly drawn levels (module docstring)."""
        import dataclasses

        from ..data import TensorDataset
        from ..runs import train
        m = self.model_
        levels = max(1, round(float(self._norm.scale.max())))  # model values are levels q / S, q in 0..S
        g = torch.Generator().manual_seed(int(self.random_state or 0))
        x = self._to_model(ds)  # (N, C, H, W) in [0, 1]
        flip = torch.rand(x.shape, generator=g) < float(self.mutation_rate)
        noise = torch.randint(0, levels + 1, x.shape, generator=g).to(x.dtype) / levels
        xb = torch.where(flip, noise, x)
        bg_ds = TensorDataset(xb, norm=ds.norm, name=f"{ds.name}-background")
        cfg = self._train_config()
        cfg["model"] = dataclasses.asdict(m.config)
        log.info("AnomalyDetector: training the background model %r on %d perturbed samples (rate %.3g)",
                 m.registry_name, len(xb), self.mutation_rate)
        return train(str(m.registry_name), bg_ds, config=cfg, figures=False,
                     progress=getattr(self, "verbose", None)).model.eval()

    def _contamination_offset(self, contamination: float) -> float:
        return float(np.percentile(self.train_scores_, 100.0 * contamination))

    def set_contamination(self, contamination: float):
        """Move the threshold to the ``contamination`` quantile of the stored training scores (no refit).

        Sets the ``contamination`` parameter, ``offset_`` and ``threshold_source_ = "contamination"``;
        returns ``self``.
        """
        self._check_fitted()
        c = self._check_contamination(contamination)
        self.contamination = c
        self.offset_ = self._contamination_offset(c)
        self.threshold_source_ = "contamination"
        self.calibration_ = {}
        return self

    def calibrate(self, X_val, y_val, *, criterion: str = "f1"):
        """Choose ``offset_`` on labelled validation data instead of from ``contamination``.

        Every cut between consecutive distinct validation scores is tried (flag the samples with
        ``score < offset``; also "flag none" and "flag all"); the one that maximises ``criterion`` wins,
        with outliers as the positive class:

        * ``"f1"``: ``2 TP / (2 TP + FP + FN)``;
        * ``"youden"``: Youden's ``J = TPR - FPR``.

        Ties go to the lowest threshold (fewest samples flagged). The offset is the midpoint between the
        two scores around the chosen cut.

        Parameters
        ----------
        X_val : array-like
            Validation samples (the fitted shape).
        y_val : array-like of shape (N,)
            ``+1`` for inliers, ``-1`` for outliers (scikit-learn's convention); both must occur.
        criterion : {"f1", "youden"}

        Returns
        -------
        self
        """
        self._check_fitted()
        if criterion not in CRITERIA:
            raise ConfigError(f"criterion={criterion!r} is not valid; valid criteria: {', '.join(CRITERIA)}")
        s = self.score_samples(X_val)
        yv = np.asarray(y_val)
        if yv.shape != (len(s),):
            raise DataError(f"y_val has shape {yv.shape} but X_val has {len(s)} samples; give one label per sample")
        if yv.dtype.kind not in "iuf" or not np.isin(yv, (1, -1)).all():
            raise DataError("y_val must hold +1 (inlier) and -1 (outlier) only; map your labels, e.g. "
                            "np.where(is_outlier, -1, 1)")
        out = yv == -1
        n_pos, n_neg = int(out.sum()), int((~out).sum())
        if n_pos == 0 or n_neg == 0:
            raise DataError(f"y_val has {n_pos} outliers and {n_neg} inliers; calibration needs both")
        order = np.argsort(s, kind="stable")
        ss, oo = s[order], out[order]
        # cut m flags the samples whose score is <= the m-th distinct value (m = -1: flag none)
        uniq = np.unique(ss)
        last = np.searchsorted(ss, uniq, side="right")  # number flagged at each cut
        tp = np.concatenate([[0], np.cumsum(oo)[last - 1]])
        flagged = np.concatenate([[0], last])
        fp = flagged - tp
        fn = n_pos - tp
        if criterion == "f1":
            value = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
        else:
            value = tp / n_pos - fp / n_neg
        m = int(np.argmax(value))  # first maximum: fewest flagged
        if m == 0:
            offset = float(uniq[0])  # nothing is < the smallest score
        elif m == len(uniq):
            offset = float(np.nextafter(uniq[-1], np.inf))
        else:
            offset = float((uniq[m - 1] + uniq[m]) / 2)
        self.offset_ = offset
        self.threshold_source_ = criterion
        self.calibration_ = {"criterion": criterion, "value": float(value[m]), "n_val": len(s),
                             "n_outliers": n_pos, "tp": int(tp[m]), "fp": int(fp[m]), "fn": int(fn[m]),
                             "precision": float(tp[m] / max(flagged[m], 1)), "recall": float(tp[m] / n_pos),
                             "fpr": float(fp[m] / n_neg)}
        log.info("AnomalyDetector: offset %.6g by %s = %.4g on %d validation samples", offset, criterion,
                 value[m], len(s))
        return self

    # ------------------------------------------------------------------ scoring
    def _prepare(self, X) -> torch.Tensor:
        self._check_fitted()
        ds = self._dataset(X, reset=False)
        self._check_shape(ds)
        if ds.kind != self.kind_:
            raise DataError(f"input is {ds.kind} data but the detector was fitted on {self.kind_} data")
        return self._to_model(ds)

    @torch.no_grad()
    def _reconstruct(self, xm: torch.Tensor, m=None) -> torch.Tensor:
        """Reconstructions of model ``m`` (default ``model_``) -> ``(N, *shape)`` float32."""
        m = (self.model_ if m is None else m).eval()
        self._require(m, needs=("can_reconstruct",), purpose="AnomalyDetector.reconstruct / error_maps")
        return torch.cat([m.reconstruct(xb).float().cpu() for xb in xm.split(_CHUNK)])  # (N, *shape)

    @torch.no_grad()
    def _scores(self, xm: torch.Tensor) -> np.ndarray:
        """Scores of model-space inputs ``xm`` -> ``(N,)`` float64, higher = more normal: the score of ``model_``,
        or with an ensemble the mean over the members of each member's score standardised by its training mean and
        standard deviation (``ensemble_scale_``)."""
        scale = getattr(self, "ensemble_scale_", None) or []
        if not scale:
            return self._raw_scores(self.model_, self._params()[0], xm)
        return np.mean([(self._raw_scores(m, p, xm) - mu) / sd
                        for m, p, (mu, sd) in zip(self._members(), self._params(), scale)], axis=0)

    @torch.no_grad()
    def _raw_scores(self, m, params: dict, xm: torch.Tensor) -> np.ndarray:
        """The score of one model ``m`` with its score parameters -> ``(N,)`` float64, higher = more normal."""
        scoring = getattr(self, "scoring_", self.scoring)
        if scoring in _RECON:
            if getattr(self, "latent_score_", None) is None:
                return self._recon_term(xm, params, m=m)
            codes, recon = self._codes_and_recon(self._model64(m), xm)
            return self._combined(self._recon_term(xm, params, recon), self._latent_term(codes, params), params)
        m = m.eval()
        if scoring in _EXACT:
            ll = self._exact_ll(m, xm)
            return ll - self._exact_ll(self.background_.eval(), xm) if scoring == "likelihood_ratio" else ll
        k = int(self.n_samples)
        g = torch.Generator().manual_seed(int(self.random_state or 0))
        eps = torch.randn((k, m.latent_dim), generator=g).to(m.device)  # (k, L), shared by all inputs
        per = max(1, _CHUNK // k)
        out = [self._likelihood_batch(m, xb.to(m.device), eps) for xb in xm.split(per)]
        return torch.cat(out).cpu().numpy()

    def _recon_term(self, xm: torch.Tensor, params: dict, recon: torch.Tensor | None = None, m=None) -> np.ndarray:
        """The reconstruction score of ``scoring_`` (higher = more normal) -> ``(N,)`` float64, from the given
        reconstructions ``recon`` (the float64 copy's) or else model ``m``'s own (default ``model_``)."""
        r = self._reconstruct(xm, m).double() if recon is None else recon
        res = (r - xm.double()).flatten(1)  # (N, D)
        scoring = getattr(self, "scoring_", self.scoring)
        if scoring == "standardized_reconstruction":
            return -(res / torch.tensor(params["feature_scale"], dtype=torch.float64)).pow(2).mean(1).numpy()
        err = res.pow(2).mean(1)  # (N,)
        if scoring == "relative_reconstruction":
            ms = xm.double().flatten(1).pow(2).mean(1)  # (N,) the input's mean square
            return (-torch.log(err + _LOG_EPS) + 0.5 * torch.log(ms + _LOG_EPS)).numpy()
        return -err.numpy()

    def _latent_term(self, codes: np.ndarray, params: dict) -> np.ndarray:
        """Minus the squared Mahalanobis distance of the codes ``(N, L)`` to the training codes' Gaussian ->
        ``(N,)``."""
        d = codes - np.asarray(params["location"])  # (N, L)
        return -np.einsum("nl,lk,nk->n", d, np.asarray(params["precision"]), d)

    @staticmethod
    def _exact_ll(m, xm: torch.Tensor) -> np.ndarray:
        return torch.cat([m.log_likelihood(xb.to(m.device)).double().cpu() for xb in xm.split(256)]).numpy()

    def _likelihood_batch(self, m, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """ELBO or IWAE score for a batch ``x`` (B, ...) with the shared draws ``eps`` (k, L) -> (B,)."""
        b, k = len(x), len(eps)
        mu, logvar = m.posterior(x)  # (B, L) each
        std = (0.5 * logvar).exp()
        z = mu.unsqueeze(0) + std.unsqueeze(0) * eps.unsqueeze(1)  # (k, B, L)
        raw = m.decode_raw(z.reshape(k * b, -1))  # (k*B, *shape)
        xr = x.unsqueeze(0).expand(k, *x.shape).reshape(k * b, *x.shape[1:])
        lpx = m.log_px_z(raw, xr).view(k, b).double()  # (k, B)
        if getattr(self, "scoring_", self.scoring) == "elbo":
            return lpx.mean(0) - m.kl(mu, logvar).double()
        log2pi = math.log(2 * math.pi)
        lpz = (-0.5 * (z.pow(2) + log2pi)).sum(-1).double()  # (k, B)
        lqz = (-0.5 * (eps.unsqueeze(1).pow(2) + log2pi + logvar.unsqueeze(0))).sum(-1).double()
        return torch.logsumexp(lpx + lpz - lqz, 0) - math.log(k)

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each sample: **higher = more normal** (scikit-learn's sign).

        ``scoring="reconstruction"``: minus the mean squared reconstruction error over the features (model
        space: images in [0, 1], tabular standardised); ``"elbo"`` / ``"iwae"``: nats (see the module doc).

        Returns
        -------
        ndarray of shape (N,), float64
        """
        return self._scores(self._prepare(X))

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers, non-negative for inliers -> ``(N,)``."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """``+1`` for inliers and ``-1`` for outliers (``decision_function(X) < 0``) -> ``(N,)`` int."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def reconstruct(self, X) -> np.ndarray:
        """Reconstructions in the caller's units (images in [0, 1], tabular in raw units), shape of ``X``'s
        samples ``(N, *input_shape_)``."""
        return self._from_model(self._reconstruct(self._prepare(X)))

    def error_maps(self, X) -> np.ndarray:
        """Per-pixel squared reconstruction error of images, averaged over channels -> ``(N, H, W)``.

        In [0, 1] pixel units; the mean of a map over its pixels is ``-score_samples`` for
        ``scoring="reconstruction"``.
        """
        xm = self._prepare(X)
        if self.kind_ != "image":
            raise DataError("error_maps needs image data; for tabular data use -score_samples or compare "
                            "reconstruct(X) with X column by column")
        err = (self._reconstruct(xm).double() - xm.double()) ** 2  # (N, C, H, W)
        return err.mean(1).numpy()
