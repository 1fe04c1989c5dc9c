"""The shared base of the application estimators (scikit-learn rules, one save format).

Every estimator in :mod:`genlab.apps`:

* takes keyword arguments in ``__init__`` and only stores them (``sklearn.base.clone`` works);
* ``fit`` returns ``self``; learned attributes end in ``_`` (``model_``, ``input_shape_``, ...);
* takes arrays in and gives arrays out: images ``(N, C, H, W)`` or ``(N, H, W)`` (uint8 0..255 or floats in
  [0, 1]), tabular ``(N, D)`` in the data's own units (standardised internally by training statistics);
* checks its input the scikit-learn way (:meth:`ModelEstimator._check_X`, built on
  ``sklearn.utils.validation.validate_data``): sparse, complex and non-numeric object input, 1-D arrays and empty
  data are refused with scikit-learn's wording; ``fit`` sets ``n_features_in_`` (scalars per sample: ``D`` for
  tabular rows, ``C*H*W`` for images) and ``feature_names_in_`` (from a DataFrame with string column names, or a
  TensorDataset's ``columns``: a CSV's header), and later data with other names or another order is refused;
  methods of an unfitted estimator raise :class:`NotFittedError` (scikit-learn's, and a ``ConfigError``);
* declares its scikit-learn tags in ``__sklearn_tags__`` (``_allow_nan``, ``_requires_y``, ``_preserves_dtype``);
* wraps a registered model by name (trained in ``fit``), a saved model / run folder path, or an already
  loaded model object (used as it is: ``fit`` then only calibrates);
* states what it needs from that model as declared capabilities (:meth:`ModelEstimator._requirements`: the
  capabilities needed and those refused, see :data:`genlab.models.CAPABILITIES`); ``fit`` checks them through the
  one helper :func:`genlab.models.require` (a one-line ``ConfigError`` naming the missing capability and the
  registered models that have it) before training a name, and again on a loaded or given model;
* ``save(path)`` writes a folder: ``estimator.json`` (class, parameters, JSON state), ``state.safetensors``
  (array state) and ``model/`` (the wrapped model, safetensors + JSON); ``load(path)`` rebuilds it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import __version__
from ..config import SEED_MAX
from ..data import Normalization, TensorDataset
from ..data.files import dataset_from_arrays
from ..errors import CheckpointError, ConfigError, DataError, GenlabError
from ..io.atomic import atomic_dir
from ..registry import get_model_entry, list_models


def model_names() -> list[str]:
    return [n for n, _ in list_models()]

log = logging.getLogger(__name__)

#: largest ``n_ensemble`` of an estimator that trains several models (:meth:`ModelEstimator._fit_members`)
MAX_ENSEMBLE = 10
#: the attributes holding the ensemble members beyond ``model_`` (list them in ``_model_state`` to save them,
#: in the folders ``member_<i>_/``)
MEMBER_ATTRS = tuple(f"member_{i}_" for i in range(1, MAX_ENSEMBLE))

ESTIMATOR_FILE = "estimator.json"
#: the genlab command that uses a saved estimator of each class with --run (named in load's wrong-class error)
ESTIMATOR_COMMANDS = {"AnomalyDetector": "detect", "Denoiser": "denoise", "Imputer": "impute", "Compressor": "compress",
                      "Augmenter": "augment", "LatentExplorer": "latent-map", "Upscaler": "upscale",
                      "Colorizer": "colorize", "Inpainter": "inpaint", "Translator": "translate"}
STATE_FILE = "state.safetensors"
MODEL_DIR = "model"


def _article(name: str) -> str:
    return "an" if name[:1].upper() in "AEIOU" else "a"


def translate(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Images ``(..., H, W)`` moved ``dx`` pixels right and ``dy`` down (negative: left / up), the uncovered rows
    and columns zero; a shift of a whole side or more gives zeros. The shifted copies of the apps
    (:func:`genlab.apps.augment.shift_images`, :func:`genlab.apps.latent.shifted_copies`) are made with it."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dx) < w and abs(dy) < h:
        out[..., max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
            x[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


class NotFittedError(ConfigError, _SklearnNotFittedError):
    """A method of an estimator that is not fitted yet was called (scikit-learn's ``NotFittedError``, and a
    genlab ``ConfigError`` so the CLI prints it on one line)."""


def as_dataset(X, y=None, *, name: str = "array", allow_nan: bool = False) -> TensorDataset:
    """A :class:`TensorDataset` from an array-like (numpy or torch): images ``(N, H, W)``/``(N, C, H, W)`` or
    tabular ``(N, D)``. NaN is refused unless ``allow_nan`` (tabular data keeps NaN for imputation)."""
    if isinstance(X, TensorDataset):
        ds = X
    else:
        a = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        if a.dtype.kind == "f" and a.ndim in (3, 4) and allow_nan and np.isnan(a).any():
            raise DataError(f"{name}: image data contains NaN; mark missing pixels with a mask instead")
        yy = None if y is None else (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y))
        ds = dataset_from_arrays(a, yy, name)
    if not allow_nan and ds.has_missing:
        raise DataError(f"{name}: input contains NaN; fill or drop the missing entries first "
                        "(genlab.apps.Imputer fills them)")
    return ds


class ModelEstimator(BaseEstimator):
    """Base class. Subclasses set ``default_model``, the capabilities they need from the model (``_needs``) and
    refuse (``_refuses``), and list their learned JSON-able attributes in ``_json_state`` and array attributes in
    ``_array_state`` (saved by :meth:`save`)."""

    default_model: ClassVar[str] = "ae"
    #: declared model capabilities (:data:`genlab.models.CAPABILITIES`) the estimator needs / refuses
    _needs: ClassVar[tuple[str, ...]] = ()
    _refuses: ClassVar[tuple[str, ...]] = ()
    _json_state: ClassVar[tuple[str, ...]] = ()
    _array_state: ClassVar[tuple[str, ...]] = ()
    #: array attributes added after the first release: a saved folder without one loads with this value (the
    #: estimator then behaves as it did when the folder was written; pair it with :meth:`_upgrade_params`)
    _array_defaults: ClassVar[dict[str, tuple[int, ...]]] = {}
    #: attributes holding further fitted models (saved in a sub-folder named after the attribute when not None)
    _model_state: ClassVar[tuple[str, ...]] = ()
    #: scikit-learn tags (see ``__sklearn_tags__``): NaN accepted as missing values, ``y`` needed by ``fit``
    _allow_nan: ClassVar[bool] = False
    _requires_y: ClassVar[bool] = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_nan
        tags.target_tags.required = self._requires_y
        return tags

    # ------------------------------------------------------------------ input checks
    def _check_X(self, X, *, reset: bool, name: str = "X"):
        """``X`` checked the scikit-learn way, as a numpy array (or a :class:`TensorDataset`, passed through).

        ``validate_data`` refuses sparse, complex and non-numeric object input and empty data with
        scikit-learn's wording (object arrays of numbers become float64), and sets (``reset=True``, in ``fit``)
        or checks ``n_features_in_`` and ``feature_names_in_`` (DataFrames; a TensorDataset's ``columns``,
        :meth:`_check_columns`). Images ``(N, H, W)`` /
        ``(N, C, H, W)`` are checked as n-d arrays; their ``n_features_in_`` is the number of scalars per
        sample, and their shape is checked by :meth:`_check_shape`. NaN and inf are left to
        :func:`as_dataset` (genlab's messages; the Imputer keeps NaN). Value errors become one-line
        :class:`DataError` (a ``ValueError``) with scikit-learn's message.
        """
        if isinstance(X, TensorDataset):  # checked when it was built (a TensorDataset is never empty)
            n = int(np.prod(X.sample_shape))
            columns = getattr(X, "columns", None)  # a CSV's header
            if reset:
                self.n_features_in_ = n
                if columns is not None:
                    self.feature_names_in_ = np.asarray(columns, dtype=object)
                elif hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            else:
                self._check_columns(columns, name)
            return X
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        elif not hasattr(X, "ndim"):  # lists, array-likes with __array__ (arrays, DataFrames, sparse have ndim)
            X = np.asarray(X)
        ndim = X.ndim
        if ndim < 2:
            raise DataError(f"{name}: expected 2-D tabular data (N, D) or images (N, H, W) / (N, C, H, W), got a "
                            f"{ndim}-D array; Reshape your data: array.reshape(-1, 1) for a single feature or "
                            "array.reshape(1, -1) for a single sample")
        # n-d checks for images; also for any input to an estimator fitted on images, whose shape check
        # (_check_shape: "samples have shape (5,) but ... fitted on (1, 8, 8)") says more than a feature count
        nd = ndim >= 3 or (not reset and getattr(self, "kind_", None) == "image")
        try:
            a = validate_data(self, X, reset=reset, dtype="numeric", ensure_all_finite=False, ensure_2d=not nd,
                              allow_nd=nd, ensure_min_samples=1, ensure_min_features=1)
        except ValueError as e:
            if isinstance(e, GenlabError):
                raise
            msg = str(e).strip()
            if msg.startswith("Complex data not supported"):  # scikit-learn appends the whole array
                msg = "Complex data not supported; give real numbers (e.g. X.real or abs(X))"
            elif "features, but" in msg and "is expecting" in msg:  # scikit-learn's column-count check
                msg = msg.rstrip(".") + "; give data with the columns the estimator was fitted on"
            raise DataError(f"{name}: {' '.join(msg.split())}") from None
        if ndim >= 3 and reset:
            self.n_features_in_ = int(np.prod(a.shape[1:]))
        return a

    def _check_columns(self, columns, name: str) -> None:
        """Refuse named columns (a CSV's header) that differ from the names seen in ``fit``: same count, other
        names or another order would be read as the fitted columns and give wrong results without a word. Data
        without names, or an estimator fitted without them, is not checked (as scikit-learn)."""
        fitted = getattr(self, "feature_names_in_", None)
        if columns is None or fitted is None or list(columns) == [str(c) for c in fitted]:
            return
        fitted = [str(c) for c in fitted]
        if sorted(columns) == sorted(fitted):
            j = next(i for i, (a, b) in enumerate(zip(columns, fitted)) if a != b)
            raise DataError(f"{name}: the columns are in another order than in fit (column {j + 1} is "
                            f"{columns[j]!r}, fitted {fitted[j]!r}); give them in the fitted order: "
                            f"{', '.join(fitted)[:200]}")
        new, gone = [c for c in columns if c not in fitted], [c for c in fitted if c not in columns]
        raise DataError(f"{name}: the columns differ from those seen in fit (new: {', '.join(new)[:80] or '-'}; "
                        f"missing: {', '.join(gone)[:80] or '-'}); give the fitted columns "
                        f"{', '.join(fitted)[:200]}")

    def _dataset(self, X, y=None, *, reset: bool, name: str = "X") -> TensorDataset:
        """:meth:`_check_X` then :func:`as_dataset` (NaN refused unless the estimator allows it)."""
        return as_dataset(self._check_X(X, reset=reset, name=name), y, name=name, allow_nan=self._allow_nan)

    # ------------------------------------------------------------------ model handling
    def _model_param(self):
        return getattr(self, "model", None) or self.default_model

    def _requirements(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(needed, refused)`` capabilities of the wrapped model under the current parameters (default: the
        class's ``_needs`` / ``_refuses``; an estimator whose needs depend on a parameter overrides this)."""
        return tuple(self._needs), tuple(self._refuses)

    def _purpose(self) -> str:
        """What needs the capabilities, as named in the error (``"Imputer"``)."""
        return type(self).__name__

    def _require(self, model_or_cls, *, kind: str | None = None, needs: tuple[str, ...] | None = None,
                 purpose: str | None = None, labelled: bool = True) -> None:
        """Refuse a model (instance, class or registered name) that lacks a capability of
        :meth:`_requirements` or has a refused one: :func:`genlab.models.require`'s one-line ``ConfigError``.
        ``needs``/``purpose`` name the capabilities of one method instead (``LatentExplorer.encode``).
        ``labelled=False``: the model is to be trained on data without labels, so it must not be conditional."""
        from ..models import require
        if needs is not None:
            require(model_or_cls, *needs, kind=kind, purpose=purpose or self._purpose())
            return
        needed, refused = self._requirements()
        require(model_or_cls, *needed, forbid=refused, kind=kind, purpose=purpose or self._purpose())
        if not labelled:
            require(model_or_cls, *needed, forbid=(*refused, "conditional"),
                    purpose=f"{purpose or self._purpose()} training on data without labels")

    def check_model(self):
        """Refuse a ``model`` parameter (a registered name or a model object) that lacks a capability this
        estimator needs, or has one it refuses, with :func:`genlab.models.require`'s one-line ``ConfigError``
        (which names the missing capability and the registered models that have it). ``fit`` calls it before it
        reads any data; a saved model / run folder is checked once ``fit`` has loaded it. Returns ``self``."""
        from ..models.base import GenerativeModel
        self._training_params()  # the shared training parameters too, before anything reads them
        spec = self._model_param()
        if isinstance(spec, GenerativeModel):
            self._require(spec)
        elif self._trains_by_name():
            self._require(str(spec))  # whether fit has labels for a conditional model is checked in _fit_model
        return self

    def _training_params(self) -> tuple[int, int, int]:
        """``(epochs, batch_size, seed)`` after checking the shared training parameters, and ``model_config`` /
        ``trainer_config`` (dicts or None) and ``validation_fraction``: one-line ``ConfigError`` naming the parameter
        (a string or NaN reached ``int()`` and raised its bare ``ValueError``; 2.5 epochs were cut to 2)."""
        out = []
        for name, default, low, high in (("epochs", 50, 1, None), ("batch_size", 128, 1, None),
                                         ("random_state", 0, 0, SEED_MAX)):
            v = getattr(self, name, default)
            v = 0 if name == "random_state" and v is None else v
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (high and v > high):
                span = f"in [{low}, {high}]" if high else f">= {low}"
                raise ConfigError(f"{name} must be an integer {span}, got {v!r}")
            out.append(int(v))
        for name in ("model_config", "trainer_config"):
            v = getattr(self, name, None)
            if v is not None and not isinstance(v, dict):
                example = "{'latent_dim': 8}" if name == "model_config" else "{'lr_schedule': 'cosine'}"
                raise ConfigError(f"{name} must be a dict of settings or None, got {type(v).__name__} {v!r:.40}; "
                                  f"e.g. {name}={example}")
        f = getattr(self, "validation_fraction", 0.1)
        if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) or not 0 <= f < 1:
            raise ConfigError(f"validation_fraction must be a number in [0, 1), got {f!r}; e.g. 0.1")
        return out[0], out[1], out[2]

    def _train_config(self) -> dict:
        """Run config sections for training the wrapped model (subclasses may add to it).

        The trainer's sample monitors are off (``monitor_every=0``, ``sample_every=0``, and ``fid_samples=0``
        unless the model picks its best epoch by the FID monitor, as GANs do): an estimator trains a model as a
        means to an end, and drawing 1,000 samples at every validation would dominate the fit of a slow sampler
        (a ``pixelcnn`` detector spent most of its fit sampling for a figure no one saw). ``trainer_config``
        turns them back on. For the same reason the run's held-out numbers are off (``test.enabled=false``): no
        estimator reads them, and the IWAE bound with 100 samples was a third of a short ``cvae`` fit."""
        epochs, batch_size, seed = self._training_params()
        trainer = {"epochs": epochs, "batch_size": batch_size, "seed": seed, "restore_best": True,
                   "monitor_every": 0, "sample_every": 0}
        spec = self._model_param()
        if self._trains_by_name():
            if (get_model_entry(str(spec)).cls.default_monitor or ("",))[0] != "val/fid":
                trainer["fid_samples"] = 0
        trainer.update(getattr(self, "trainer_config", None) or {})
        return {"model": dict(getattr(self, "model_config", None) or {}), "trainer": trainer,
                "data": {"val": float(getattr(self, "validation_fraction", 0.1)), "test": 0.0},
                "test": {"enabled": False}}

    def _trains_by_name(self) -> bool:
        """True when ``model`` is a registered name that ``fit`` trains (not a saved folder or a given model): a
        ``str`` or ``Path`` whose text is a registered name (the one test every estimator uses for it)."""
        spec = self._model_param()
        return isinstance(spec, (str, Path)) and str(spec) in model_names()

    def _fit_members(self, ds: TensorDataset, n: int) -> None:
        """Ensemble members ``member_1_ .. member_<n-1>_``: the wrapped model's name and config trained on ``ds``
        like ``model_`` but with the seeds ``random_state + i``; the other member attributes are None."""
        from ..runs import train
        for i, attr in enumerate(MEMBER_ATTRS, start=1):
            m = None
            if i < n:
                cfg = self._train_config()
                cfg["trainer"]["seed"] = int(self.random_state or 0) + i
                log.info("%s: training ensemble member %d of %d (seed %d)", type(self).__name__, i + 1, n,
                         cfg["trainer"]["seed"])
                m = train(str(self._model_param()), ds, config=cfg, figures=False,
                          progress=getattr(self, "verbose", None)).model.eval()
                self._require(m)
            setattr(self, attr, m)

    def _members(self) -> list:
        """``[model_, member_1_, ...]``: the fitted models of an ensemble (``[model_]`` without one)."""
        extra = (getattr(self, a, None) for a in MEMBER_ATTRS)
        return [self.model_, *(m for m in extra if m is not None)]

    def _fit_model(self, ds: TensorDataset, *, config: dict | None = None):
        """Set ``model_`` from the ``model`` parameter: train a registered name on ``ds``, load a path, or use
        a given model object. Also sets ``input_shape_`` and ``kind_``. The model's declared capabilities are
        checked (:meth:`_require`) before a name is trained and after a folder is loaded."""
        from ..io.serialize import load
        from ..models.base import GenerativeModel
        from ..runs import train

        spec = self._model_param()
        if isinstance(spec, GenerativeModel):
            self._require(spec)
            model = spec.eval()
        elif self._trains_by_name():
            # before any training; a conditional model trained by name needs the labels of the data
            self._require(str(spec), kind=ds.kind, labelled=ds.y is not None)
            cfg = self._train_config()
            for k, v in (config or {}).items():
                cfg.setdefault(k, {}).update(v)
            log.info("%s: training %r on %d samples", type(self).__name__, str(spec), len(ds))
            model = train(str(spec), ds, config=cfg, figures=False,
                          progress=getattr(self, "verbose", None)).model.eval()
        elif isinstance(spec, (str, Path)) and Path(spec).exists():
            model = load(spec)
            self._require(model)
        else:
            raise ConfigError(f"model={spec!r} is neither a registered model ({', '.join(model_names())}) nor a "
                              "saved model/run folder; pick a name or give a path")
        if model.kind != ds.kind or tuple(model.shape) != ds.sample_shape:
            raise DataError(f"the model was built for {model.kind} data of shape {tuple(model.shape)} but the data "
                            f"has shape {ds.sample_shape}; give data of the model's shape")
        self.model_ = model
        self.input_shape_ = tuple(ds.sample_shape)
        self.kind_ = ds.kind
        return model

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self, "model_")
        except _SklearnNotFittedError:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call fit(X) first") \
                from None

    def _check_shape(self, ds: TensorDataset) -> None:
        if ds.sample_shape != tuple(self.input_shape_):
            raise DataError(f"input samples have shape {ds.sample_shape} but the estimator was fitted on "
                            f"{tuple(self.input_shape_)}; give data of the fitted shape")

    @property
    def _norm(self) -> Normalization:
        return Normalization.from_dict(self.model_.data_info["norm"])

    def _to_model(self, ds: TensorDataset) -> torch.Tensor:
        """Samples of ``ds`` in the wrapped model's space (tabular data standardised by its training stats;
        images are in [0, 1] in every data set, whatever their raw pixel scale, e.g. 0..16 for ``digits``)."""
        if ds.kind == "image":
            return ds.x
        return self._norm.from_raw(ds.norm.to_raw(ds.x))

    def _from_model(self, x: torch.Tensor) -> np.ndarray:
        """Model-space tensor back to the caller's units: images in [0, 1], tabular in raw units."""
        x = x.detach().cpu()
        if self.kind_ == "image":
            return x.clamp(0, 1).numpy()
        return self._norm.to_raw(x).numpy()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to folder ``path``: a new folder, an empty one, or an earlier save, which is
        replaced atomically as a whole. A file or a folder holding anything else (the user's files) is refused
        with a one-line ``ConfigError`` and left as it is."""
        from safetensors.torch import save_file

        from ..io.serialize import write_model_files
        self._check_fitted()
        params = {k: v for k, v in self.get_params(deep=False).items()}
        if not isinstance(params.get("model"), (str, type(None))):
            params["model"] = str(params["model"]) if isinstance(params["model"], Path) else None
        keys = ("input_shape_", "kind_", "n_features_in_", *(("feature_names_in_",) if hasattr(
            self, "feature_names_in_") else ()), *self._json_state)
        state = {k: _jsonable(getattr(self, k)) for k in dict.fromkeys(keys) if hasattr(self, k)}
        arrays = {k: torch.as_tensor(np.asarray(getattr(self, k))).contiguous() for k in self._array_state}
        path = Path(path)
        models = [k for k in self._model_state if getattr(self, k, None) is not None]  # further fitted models
        with atomic_dir(path, owned=(ESTIMATOR_FILE, STATE_FILE, MODEL_DIR, *self._model_state)) as tmp:
            (tmp / ESTIMATOR_FILE).write_text(json.dumps(
                {"estimator": type(self).__name__, "genlab_version": __version__, "params": params,
                 "state": state, "model_folders": models}, indent=2) + "\n")
            if arrays:
                save_file(arrays, str(tmp / STATE_FILE))
            (tmp / MODEL_DIR).mkdir()
            write_model_files(self.model_, tmp / MODEL_DIR)
            for k in models:  # e.g. a detector's background model, an ensemble's members
                (tmp / k).mkdir()
                write_model_files(getattr(self, k), tmp / k)
        return path

    @classmethod
    def _upgrade_params(cls, params: dict) -> dict:
        """Parameters read from an ``estimator.json`` in this version's names (renamed parameters)."""
        return params

    @classmethod
    def load(cls, path: str | Path):
        """Rebuild an estimator written by :meth:`save`."""
        from safetensors.torch import load_file

        from ..io.serialize import load
        path = Path(path)
        f = path / ESTIMATOR_FILE
        if not f.is_file():
            raise CheckpointError(f"{f} is missing; give a folder written by {cls.__name__}.save")
        try:
            rec = json.loads(f.read_text())
            name, params, state = rec["estimator"], rec["params"], rec["state"]
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{f} is corrupt ({e}); save the estimator again") from None
        if name != cls.__name__:
            command = ESTIMATOR_COMMANDS.get(name)
            cli = f" (genlab {command} --run {path})" if command else ""
            raise CheckpointError(f"{path} holds {_article(name)} {name}, not {_article(cls.__name__)} {cls.__name__}; "
                                  f"load it with {name}.load{cli}")
        est = cls(**cls._upgrade_params(dict(params)))
        for k, v in state.items():
            setattr(est, k, tuple(v) if k == "input_shape_" else v)
        if "feature_names_in_" in state:
            est.feature_names_in_ = np.asarray(state["feature_names_in_"], dtype=object)
        if "n_features_in_" not in state and "input_shape_" in state:  # written before n_features_in_ was saved
            est.n_features_in_ = int(np.prod(est.input_shape_))
        if cls._array_state:
            try:
                arrays = load_file(str(path / STATE_FILE))
            except Exception as e:  # safetensors raises several types for truncated files
                raise CheckpointError(f"{path / STATE_FILE} cannot be read ({e}); save the estimator again") from None
            for k in cls._array_state:
                if k not in arrays and k in cls._array_defaults:  # written before this array existed
                    arrays[k] = torch.zeros(cls._array_defaults[k], dtype=torch.float64)
                if k not in arrays:
                    raise CheckpointError(f"{path / STATE_FILE} lacks {k!r}; save the estimator again")
                setattr(est, k, arrays[k].numpy())
        est.model_ = load(path / MODEL_DIR)
        listed = rec.get("model_folders")  # the further models the save wrote (absent in older saves)
        if listed is not None and (not isinstance(listed, list) or not set(listed) <= set(cls._model_state)):
            raise CheckpointError(f"{f} is corrupt (model_folders {listed!r}); save the estimator again")
        for k in listed or ():
            if not (path / k).is_dir():
                raise CheckpointError(f"{path / k} is missing but {f} lists it: the save is incomplete; copy the "
                                      "whole folder or save the estimator again")
        for k in cls._model_state:  # further fitted models, saved in a folder named after the attribute
            if (path / k).is_dir():
                setattr(est, k, load(path / k))
        est._require(est.model_)  # a folder whose model was swapped for one this estimator cannot use
        return est


class ModelTransformer(TransformerMixin, ModelEstimator):
    """Base of the estimators with ``transform`` (scikit-learn's ``TransformerMixin`` first, as it requires):
    ``fit_transform`` and the transformer tags, with ``_preserves_dtype`` the float dtypes that ``transform``
    returns unchanged (scikit-learn's ``preserves_dtype`` tag)."""

    _preserves_dtype: ClassVar[tuple[str, ...]] = ("float64",)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()  # TransformerMixin sets a fresh transformer_tags
        tags.transformer_tags.preserves_dtype = list(self._preserves_dtype)
        return tags


def restore_layout(a: np.ndarray, X) -> np.ndarray:
    """Images ``(N, C, H, W)`` computed from the caller's ``X`` back in ``X``'s layout: ``(N, H, W)`` for 3-D
    input, ``(N, H, W, C)`` for channels-last input (as :func:`as_dataset` read them); anything else as is."""
    like = tuple(X.x.shape) if isinstance(X, TensorDataset) else tuple(
        getattr(X, "shape", None) or np.asarray(X).shape)  # array-likes without .shape go through __array__
    if a.ndim != 4 or tuple(a.shape) == like or len(like) not in (3, 4) or like[0] != a.shape[0]:
        return a
    if len(like) == 3:
        return a[:, 0]
    if like == (a.shape[0], a.shape[2], a.shape[3], a.shape[1]):
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1))
    return a


def _jsonable(v: Any):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    return v
