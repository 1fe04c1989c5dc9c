"""Data augmentation with a conditional generator: N labelled samples per class, as arrays or files.

>>> aug = Augmenter(model="cvae", n_per_class=100, epochs=200).fit(X, y)
>>> X_new, y_new = aug.generate(random_state=0)          # 100 per class, in the classes_ order
>>> X_res, y_res = Augmenter(n_per_class="balance").fit_resample(X, y)   # real + generated
>>> aug.write("generated/")                               # class sub-folders of PNGs (load_dataset reads it)

Determinism: the samples of class ``k`` come from a ``torch.Generator`` seeded with
``SeedSequence([random_state, k])``, so they do not depend on which other classes are asked for.
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
from ._base import ModelEstimator, as_dataset, model_names

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
    n_features_in_ : int
        Scalars per sample (``D``, or ``C*H*W`` for images).
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names.
    """

    default_model = "cvae"
    #: ``sample(n, labels=...)`` draws samples of a requested class
    _needs = ("conditional", "can_sample")
    _json_state = ("classes_", "class_names_", "class_counts_")
    _requires_y = True

    def __init__(self, *, model="cvae", model_config=None, n_per_class=100, epochs=50, batch_size=128,
                 random_state=0, validation_fraction=0.1, trainer_config=None, verbose=None):
        self.model = model
        self.model_config = model_config
        self.n_per_class = n_per_class
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
        spec = self._model_param()
        x_in = X.x if isinstance(X, TensorDataset) else X
        norm = X.norm if isinstance(X, TensorDataset) else None
        if isinstance(spec, str) and spec in model_names():
            classes, enc = np.unique(yy, return_inverse=True)
            if norm is None:
                ds = as_dataset(x_in, enc.astype(np.int64))
            else:
                as_dataset(X)  # refuses NaN
                if len(yy) != len(X):
                    raise DataError(f"{len(X)} samples but {len(yy)} labels; give one label per sample")
                ds = TensorDataset(X.x, torch.from_numpy(enc.astype(np.int64)), norm=norm, name=X.name)
            self._fit_model(ds)
            if ds_names and classes.dtype.kind in "iu" and int(classes.max()) < len(ds_names):
                names = [str(ds_names[int(c)]) for c in classes]
            else:
                names = [str(c) for c in classes]
        else:
            ds = as_dataset(x_in) if norm is None else as_dataset(TensorDataset(X.x, None, norm=norm, name=X.name))
            if len(yy) != len(ds):
                raise DataError(f"{len(ds)} samples but {len(yy)} labels; give one label per sample")
            model = self._fit_model(ds)
            k = int(model.num_classes)
            if yy.dtype.kind not in "iu" and not (yy.dtype.kind == "f" and (yy == np.round(yy)).all()):
                raise DataError(f"the given model was trained on labels 0..{k - 1}; y must hold integers in that "
                                "range")
            if len(yy) and (yy.min() < 0 or yy.max() >= k):
                bad = yy.min() if yy.min() < 0 else yy.max()
                raise DataError(f"label {bad} is outside the model's classes 0..{k - 1}; give labels in that range")
            classes = np.arange(k)
            enc = yy.astype(np.int64)
            stored = model.data_info.get("classes") or []
            names = [str(stored[i]) if i < len(stored) else str(i) for i in range(k)]
        self.classes_ = classes
        self.class_names_ = names
        self.class_counts_ = np.bincount(enc, minlength=len(classes)).astype(int).tolist()
        log.info("Augmenter: %d classes, %d real samples", len(classes), len(yy))
        return self

    @classmethod
    def load(cls, path):
        """Rebuild an Augmenter written by :meth:`save`."""
        est = super().load(path)
        est.classes_ = np.asarray(est.classes_)
        return est

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
        parts = []
        for i in range(0, n, _BATCH):
            b = min(_BATCH, n - i)
            parts.append(m.sample(b, labels=torch.full((b,), k, dtype=torch.long), generator=g).float().cpu())
        return torch.cat(parts)  # (n, *shape) model space

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
