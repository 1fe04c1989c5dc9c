"""The shared base of the application estimators (scikit-learn rules, one save format).

Every estimator in :mod:`genlab.apps`:

* takes keyword arguments in ``__init__`` and only stores them (``sklearn.base.clone`` works);
* ``fit`` returns ``self``; learned attributes end in ``_`` (``model_``, ``input_shape_``, ...);
* takes arrays in and gives arrays out: images ``(N, C, H, W)`` or ``(N, H, W)`` (uint8 0..255 or floats in
  [0, 1]), tabular ``(N, D)`` in the data's own units (standardised internally by training statistics);
* wraps a registered model by name (trained in ``fit``), a saved model / run folder path, or an already
  loaded model object (used as it is: ``fit`` then only calibrates);
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
from sklearn.base import BaseEstimator

from .. import __version__
from ..data import Normalization, TensorDataset
from ..data.files import dataset_from_arrays
from ..errors import CheckpointError, ConfigError, DataError
from ..io.atomic import atomic_dir
from ..registry import list_models


def model_names() -> list[str]:
    return [n for n, _ in list_models()]

log = logging.getLogger(__name__)

ESTIMATOR_FILE = "estimator.json"
STATE_FILE = "state.safetensors"
MODEL_DIR = "model"


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
    """Base class. Subclasses set ``default_model`` and list their learned JSON-able attributes in
    ``_json_state`` and array attributes in ``_array_state`` (saved by :meth:`save`)."""

    default_model: ClassVar[str] = "ae"
    _json_state: ClassVar[tuple[str, ...]] = ()
    _array_state: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ model handling
    def _model_param(self):
        return getattr(self, "model", None) or self.default_model

    def _train_config(self) -> dict:
        """Run config sections for training the wrapped model (subclasses may add to it)."""
        trainer = {"epochs": int(getattr(self, "epochs", 50)), "batch_size": int(getattr(self, "batch_size", 128)),
                   "seed": int(getattr(self, "random_state", 0) or 0), "restore_best": True}
        trainer.update(getattr(self, "trainer_config", None) or {})
        return {"model": dict(getattr(self, "model_config", None) or {}), "trainer": trainer,
                "data": {"val": float(getattr(self, "validation_fraction", 0.1)), "test": 0.0}}

    def _fit_model(self, ds: TensorDataset, *, config: dict | None = None):
        """Set ``model_`` from the ``model`` parameter: train a registered name on ``ds``, load a path, or use
        a given model object. Also sets ``input_shape_`` and ``kind_``."""
        from ..io.serialize import load
        from ..models.base import GenerativeModel
        from ..runs import train

        spec = self._model_param()
        if isinstance(spec, GenerativeModel):
            model = spec.eval()
        elif isinstance(spec, (str, Path)) and str(spec) in model_names():
            cfg = self._train_config()
            for k, v in (config or {}).items():
                cfg.setdefault(k, {}).update(v)
            log.info("%s: training %r on %d samples", type(self).__name__, str(spec), len(ds))
            model = train(str(spec), ds, config=cfg, figures=False).model.eval()
        elif isinstance(spec, (str, Path)) and Path(spec).exists():
            model = load(spec)
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
        if not hasattr(self, "model_"):
            raise ConfigError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

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
        """Write the fitted estimator to folder ``path`` (replaced atomically as a whole)."""
        from safetensors.torch import save_file

        from ..io.serialize import write_model_files
        self._check_fitted()
        params = {k: v for k, v in self.get_params(deep=False).items()}
        if not isinstance(params.get("model"), (str, type(None))):
            params["model"] = str(params["model"]) if isinstance(params["model"], Path) else None
        state = {k: _jsonable(getattr(self, k)) for k in ("input_shape_", "kind_", *self._json_state)}
        arrays = {k: torch.as_tensor(np.asarray(getattr(self, k))).contiguous() for k in self._array_state}
        path = Path(path)
        with atomic_dir(path) as tmp:
            (tmp / ESTIMATOR_FILE).write_text(json.dumps(
                {"estimator": type(self).__name__, "genlab_version": __version__, "params": params,
                 "state": state}, indent=2) + "\n")
            if arrays:
                save_file(arrays, str(tmp / STATE_FILE))
            (tmp / MODEL_DIR).mkdir()
            write_model_files(self.model_, tmp / MODEL_DIR)
        return path

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
            raise CheckpointError(f"{path} holds a {name}, not a {cls.__name__}; load it with {name}.load")
        est = cls(**params)
        for k, v in state.items():
            setattr(est, k, tuple(v) if k == "input_shape_" else v)
        if cls._array_state:
            try:
                arrays = load_file(str(path / STATE_FILE))
            except Exception as e:  # safetensors raises several types for truncated files
                raise CheckpointError(f"{path / STATE_FILE} cannot be read ({e}); save the estimator again") from None
            for k in cls._array_state:
                if k not in arrays:
                    raise CheckpointError(f"{path / STATE_FILE} lacks {k!r}; save the estimator again")
                setattr(est, k, arrays[k].numpy())
        est.model_ = load(path / MODEL_DIR)
        return est


def restore_layout(a: np.ndarray, X) -> np.ndarray:
    """Images ``(N, C, H, W)`` computed from the caller's ``X`` back in ``X``'s layout: ``(N, H, W)`` for 3-D
    input, ``(N, H, W, C)`` for channels-last input (as :func:`as_dataset` read them); anything else as is."""
    like = tuple(X.x.shape) if isinstance(X, TensorDataset) else tuple(np.shape(X))
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
