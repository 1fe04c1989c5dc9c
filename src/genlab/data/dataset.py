"""The one in-memory dataset type, its normalisation and fast batching."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch

from ..errors import DataError

#: most scalars in one sample (C*H*W or D): 3x1024x1024 images and tables of 4 million columns fit; beyond it
#: the networks sized from the shape would not fit in memory, so a recorded shape past it is refused
MAX_SAMPLE_VALUES = 2 ** 22
#: most classes a data set or a saved model may have
MAX_CLASSES = 100_000
#: label values below this are always accepted; above it, the largest label must stay below
#: LABEL_SPARSITY times the number of distinct labels (class names and one-hot codes are built for every
#: integer up to the largest label, so labels like {0, 10**12} would need terabytes)
LABEL_FREE_MAX = 1000
LABEL_SPARSITY = 10


def _vector(value, what: str, where: str) -> torch.Tensor:
    """A finite float32 tensor (scalar or nested lists) from JSON numbers."""
    t = None
    if not isinstance(value, (bool, str)) and isinstance(value, (int, float, list)):
        try:
            t = torch.tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError, OverflowError):
            t = None
    if t is None or t.ndim > 3:
        raise DataError(f"{where}: norm.{what} must be a number or a list of numbers, got "
                        f"{_short(value)}; re-save the model (the record is damaged)")
    if not bool(torch.isfinite(t).all()) or bool((t.abs() > 3.0e38).any()):
        raise DataError(f"{where}: norm.{what} holds a non-finite value; re-save the model (the record is damaged)")
    return t.to(torch.float32)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_label_values(y: torch.Tensor, name: str, num_classes: int | None = None) -> None:
    """Refuse negative labels, labels ``>= num_classes`` (when the class names are given) and, without
    class names, label values so sparse that building every class up to the largest would be absurd."""
    if len(y) == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise DataError(f"{name}: labels must be integers >= 0, got {lo}; remap the labels to 0..K-1")
    if num_classes is not None:
        if hi >= num_classes:
            raise DataError(f"{name}: label {hi} but only {num_classes} classes; labels must be 0..{num_classes - 1}")
        return
    if hi >= LABEL_FREE_MAX:
        distinct = int(torch.unique(y).numel())
        if hi >= LABEL_SPARSITY * distinct or hi >= MAX_CLASSES:
            raise DataError(f"{name}: largest label is {hi} but there are only {distinct} distinct labels; "
                            f"genlab makes one class per integer 0..max, so remap the labels to 0..K-1 "
                            f"(e.g. numpy.unique(y, return_inverse=True)[1])")


def check_data_info(info, where: str = "data", fix: str = "re-save the model or re-train it (the record is damaged)"
                    ) -> dict:
    """Validate a recorded data description (``TensorDataset.info()``, the ``data`` of ``config.json``).

    ``shape``: 1 to 3 positive ints with at most :data:`MAX_SAMPLE_VALUES` values per sample; ``kind``
    ``image`` or ``tabular``; ``num_classes`` null or 1..:data:`MAX_CLASSES`; ``classes`` null or that many
    strings; ``norm`` finite ``shift``/``scale`` (non-zero) numbers or vectors that broadcast to a sample.
    Returns ``info``; raises :class:`DataError` with one line (ending in ``fix``) otherwise.
    """
    if not isinstance(info, dict):
        raise DataError(f"{where}: no data description (a mapping with kind/shape/norm), got {_short(info)}; "
                        f"{fix}")
    kind = info.get("kind")
    if kind not in KINDS:
        raise DataError(f"{where}: data.kind must be one of {', '.join(KINDS)}, got {_short(kind)}; {fix}")
    shape = info.get("shape")
    if not (isinstance(shape, list) and 1 <= len(shape) <= 3 and all(_is_int(s) and s >= 1 for s in shape)):
        raise DataError(f"{where}: data.shape must be a list of 1 to 3 positive integers, got {_short(shape)}; "
                        f"{fix}")
    values = math.prod(shape)
    if values > MAX_SAMPLE_VALUES:
        raise DataError(f"{where}: data.shape {shape} has {values:,} values per sample, more than the "
                        f"{MAX_SAMPLE_VALUES:,} genlab builds models for (e.g. 3x1024x1024 images); {fix}")
    if len(shape) != KIND_NDIM[kind]:
        raise DataError(f"{where}: {kind} samples have {KIND_NDIM[kind]} dimensions, got data.shape {shape}; {fix}")
    extras = info.get("extras")
    if extras is not None and not (isinstance(extras, dict) and all(
            isinstance(n, str) and n not in ("x", "y") and isinstance(v, list) and 1 <= len(v) <= 3
            and all(_is_int(s) and s >= 1 for s in v) and math.prod(v) <= MAX_SAMPLE_VALUES
            for n, v in extras.items())):
        raise DataError(f"{where}: data.extras must map names (not x/y) to sample shapes of 1 to 3 positive "
                        f"integers, got {_short(extras)}; {fix}")
    k = info.get("num_classes")
    if k is not None and not (_is_int(k) and 1 <= k <= MAX_CLASSES):
        raise DataError(f"{where}: data.num_classes must be null or an integer in 1..{MAX_CLASSES:,}, got "
                        f"{_short(k)}; {fix}")
    classes = info.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)
                                    and (k is None or len(classes) == k)):
        raise DataError(f"{where}: data.classes must be null or a list of num_classes ({k}) names, got "
                        f"{_short(classes)}; {fix}")
    if "norm" not in info:
        raise DataError(f"{where}: no data.norm (how model values map back to pixels/units); {fix}")
    norm = Normalization.from_dict(info["norm"], where)
    for what, t in (("shift", norm.shift), ("scale", norm.scale)):
        try:
            ok = torch.broadcast_shapes(t.shape, tuple(shape)) == tuple(shape)
        except RuntimeError:
            ok = False
        if not ok:
            raise DataError(f"{where}: norm.{what} has {t.numel()} values, which does not fit samples of "
                            f"shape {shape}; {fix}")
    return info


#: data kinds and the dimensions of one sample: images (C, H, W), sequences (C, T), tabular rows (D,)
KINDS = ("image", "sequence", "tabular")
KIND_NDIM = {"image": 3, "sequence": 2, "tabular": 1}
_KIND_OF_NDIM = {4: "image", 3: "sequence", 2: "tabular"}


@dataclass(frozen=True)
class Normalization:
    """Affine map between stored model-space values and raw units: ``raw = x * scale + shift``.

    ``shift`` and ``scale`` are tensors broadcastable to one sample (scalars for images, ``(D,)``
    vectors for standardised tabular data). Images default to ``shift=0, scale=255``, i.e. model
    space is [0, 1] and raw space is 8-bit pixels.
    """

    shift: torch.Tensor = field(default_factory=lambda: torch.tensor(0.0))
    scale: torch.Tensor = field(default_factory=lambda: torch.tensor(255.0))

    def to_raw(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x) + self.shift.to(x)

    def from_raw(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.shift.to(raw)) / self.scale.to(raw)

    def to_dict(self) -> dict:
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict, where: str = "data") -> "Normalization":
        """From ``{"shift": number | list, "scale": number | list}``; anything else is a one-line DataError."""
        if not isinstance(d, dict) or "shift" not in d or "scale" not in d:
            raise DataError(f"{where}: norm must be a mapping with 'shift' and 'scale', got {_short(d)}; "
                            "re-save the model (the record is damaged)")
        shift, scale = _vector(d["shift"], "shift", where), _vector(d["scale"], "scale", where)
        if bool((scale == 0).any()):
            raise DataError(f"{where}: norm.scale holds 0, which maps every sample to one value; "
                            "re-save the model (the record is damaged)")
        return cls(shift, scale)

    @classmethod
    def pixels(cls) -> "Normalization":
        """8-bit images stored in [0, 1]."""
        return cls(torch.tensor(0.0), torch.tensor(255.0))


class TensorDataset:
    """Samples held in one tensor, with optional integer labels and the normalisation used.

    Parameters
    ----------
    x : Tensor
        ``(N, C, H, W)`` images, ``(N, C, T)`` sequences (C channels over T time steps) or ``(N, D)`` tabular
        rows, float32 in model space. Tabular data may contain NaN (missing entries); images and sequences may
        not (unless ``allow_missing``).
    y : Tensor, optional
        ``(N,)`` int64 labels in ``[0, num_classes)``.
    norm : Normalization
        How model-space values map back to raw pixels/units.
    name : str
        Where the data came from (a built-in name or a path), recorded in run configs.
    classes : list of str, optional
        Class names; defaults to ``"0" .. "K-1"`` when labels are given.
    allow_missing : bool
        NaN marks missing entries on purpose (imputation, inpainting): images may then hold NaN too, and
        the Trainer trains models with ``supports_missing`` on it (mask-aware loss). Kept by
        :meth:`subset`, :meth:`split`, :meth:`standardized` and :meth:`to`.
    extras : dict of str to Tensor, optional
        More per-sample tensors aligned with ``x`` (first dimension N), e.g. the source image and the mask of a
        paired image-to-image data set: ``{"src": (N, C', H', W'), "mask": (N, 1, H, W)}``. They are sliced with
        ``x`` by :meth:`subset`, :meth:`split` and :meth:`to`, appear under their names in every batch of
        :meth:`batches`, and their sample shapes are recorded in :meth:`info` (``extras``). Names ``x``/``y``
        are reserved.
    columns : sequence of str, optional
        Tabular data: the column names (a CSV's header, the label column left out), one per column. The
        application estimators record them in ``fit`` (``feature_names_in_``) and refuse data whose columns
        differ. Kept by :meth:`subset`, :meth:`split`, :meth:`standardized` and :meth:`to`.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None, *, norm: Normalization | None = None,
                 name: str = "tensor", classes: list[str] | None = None, allow_empty: bool = False,
                 allow_missing: bool = False, extras: dict[str, torch.Tensor] | None = None,
                 columns: Sequence[str] | None = None):
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if x.ndim not in _KIND_OF_NDIM:
            raise DataError(f"{name}: samples must be (N, D) tabular, (N, C, T) sequences or (N, C, H, W) images, "
                            f"got shape {tuple(x.shape)}; reshape the array accordingly")
        if len(x) == 0 and not allow_empty:
            raise DataError(f"{name}: the data set is empty; point it at a file or folder that holds samples")
        x = x.to(torch.float32).contiguous()
        if x.ndim > 2 and not allow_missing and torch.isnan(x).any():
            raise DataError(f"{name}: {_KIND_OF_NDIM[x.ndim]} data contains NaN; clean or re-export it "
                            "(NaN is only allowed in tabular data, for imputation)")
        self.extras = _check_extras(extras, len(x), name)
        if y is not None:
            y = torch.as_tensor(y).to(torch.int64).reshape(-1)
            if len(y) != len(x):
                raise DataError(f"{name}: {len(x)} samples but {len(y)} labels; give one label per sample")
            check_label_values(y, name, None if classes is None else len(classes))
        self.x = x
        self.y = y
        self.allow_missing = bool(allow_missing)
        self.norm = norm if norm is not None else (Normalization.pixels() if x.ndim == 4
                                                   else Normalization(torch.tensor(0.0), torch.tensor(1.0)))
        self.name = name
        if y is not None and classes is None and len(y):
            classes = [str(i) for i in range(int(y.max()) + 1)]
        self.classes = classes
        if columns is not None:
            columns = tuple(str(c) for c in columns)
            if x.ndim != 2 or len(columns) != x.shape[1]:
                raise DataError(f"{name}: {len(columns)} column names for samples of shape {tuple(x.shape[1:])}; "
                                "give one name per column of tabular data")
        self.columns = columns

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        lab = f", {self.num_classes} classes" if self.y is not None else ""
        return f"TensorDataset({self.name!r}, {len(self)} x {self.sample_shape}{lab})"

    @property
    def kind(self) -> str:
        """``"image"``, ``"sequence"`` or ``"tabular"``."""
        return _KIND_OF_NDIM[self.x.ndim]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int | None:
        return None if self.y is None else len(self.classes or []) or int(self.y.max()) + 1

    @property
    def has_missing(self) -> bool:
        return bool(torch.isnan(self.x).any())

    def info(self) -> dict:
        """JSON-able description recorded beside a trained model (checked by :func:`check_data_info`)."""
        info = {"name": self.name, "kind": self.kind, "shape": list(self.sample_shape),
                "num_classes": self.num_classes, "classes": self.classes, "norm": self.norm.to_dict()}
        if self.extras:
            info["extras"] = {k: list(v.shape[1:]) for k, v in self.extras.items()}
        return check_data_info(info, self.name,
                               fix="use smaller samples (resize the images, drop columns) or fewer classes")

    # ------------------------------------------------------------------ subsets and splits
    def subset(self, index: torch.Tensor) -> "TensorDataset":
        index = torch.as_tensor(index, dtype=torch.int64)
        return TensorDataset(self.x[index], None if self.y is None else self.y[index], norm=self.norm,
                             name=self.name, classes=self.classes, allow_empty=True, allow_missing=self.allow_missing,
                             extras={k: v[index] for k, v in self.extras.items()}, columns=self.columns)

    def split(self, val: float = 0.1, test: float = 0.1, *, seed: int = 0
              ) -> tuple["TensorDataset", "TensorDataset", "TensorDataset"]:
        """Deterministic random train/validation/test split from ``seed``.

        Sizes are ``round(val * N)`` and ``round(test * N)``; the rest is train. The permutation
        comes from ``torch.randperm`` with a generator seeded by ``seed``, so the same seed gives
        the same split on every machine.
        """
        for nm, f in (("val", val), ("test", test)):
            if not 0.0 <= f < 1.0:
                raise DataError(f"split fraction {nm}={f} is outside [0, 1); use e.g. {nm}=0.1")
        n = len(self)
        n_val, n_test = round(val * n), round(test * n)
        if n - n_val - n_test < 1:
            raise DataError(f"split val={val}, test={test} leaves no training samples out of {n}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return (self.subset(perm[n_val + n_test:]), self.subset(perm[:n_val]),
                self.subset(perm[n_val:n_val + n_test]))

    def standardized(self, reference: "TensorDataset | None" = None) -> "TensorDataset":
        """Tabular data shifted/scaled per column (sequences: per channel, over samples and time) by the
        NaN-aware mean and std of ``reference`` (default: itself); the new :class:`Normalization` maps back to
        the original units. Columns/channels with zero spread keep scale 1."""
        if self.kind == "image":
            raise DataError(f"{self.name}: standardisation is for tabular data and sequences; images keep their "
                            "pixel scale")
        ref = (reference or self).norm.to_raw((reference or self).x).double()  # 1e30 squares to inf in float32
        if ref.ndim == 3:                                          # (N, C, T) -> per channel, shapes (C, 1)
            flat = ref.transpose(1, 2).reshape(-1, ref.shape[1])
            mean = torch.nanmean(flat, 0)
            std = torch.sqrt(torch.nanmean((flat - mean) ** 2, 0))
            mean, std = mean[:, None], std[:, None]
        else:
            mean = torch.nanmean(ref, 0)
            std = torch.sqrt(torch.nanmean((ref - mean) ** 2, 0))
        if torch.isnan(mean).any():
            col = int(torch.isnan(mean).flatten().nonzero()[0])
            raise DataError(f"{self.name}: column {col} has no observed values (all NaN); drop it")
        std = torch.where(std > 0, std, torch.ones_like(std))
        norm = Normalization(mean.float(), std.float())  # a float32 column's mean and spread fit in float32
        return TensorDataset(norm.from_raw(self.norm.to_raw(self.x)), self.y, norm=norm, name=self.name,
                             classes=self.classes, allow_empty=True, allow_missing=self.allow_missing,
                             extras=self.extras, columns=self.columns)

    def to(self, device: torch.device | str) -> "TensorDataset":
        """Copy of the data on ``device`` (keeps batching free of host-to-device copies)."""
        out = TensorDataset.__new__(TensorDataset)
        out.__dict__.update(self.__dict__)
        out.x = self.x.to(device)
        out.y = None if self.y is None else self.y.to(device)
        out.extras = {k: v.to(device) for k, v in self.extras.items()}
        return out

    # ------------------------------------------------------------------ batching
    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_last else math.ceil(n / batch_size)

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Yield ``{"x": (B, ...), "y": (B,), **extras}`` dicts by slicing the tensors (no per-sample Python).

        With ``shuffle`` the order is one ``torch.randperm`` drawn from ``generator`` per call, so the
        generator's state fully determines the epoch order (the Trainer saves it for exact resume).
        ``start`` skips the first ``start`` batches of that order (resuming mid-epoch).
        """
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        perm = torch.randperm(n, generator=generator).to(self.x.device) if shuffle else None
        stop = (n // batch_size) * batch_size if drop_last else n
        for i0 in range(start * batch_size, stop, batch_size):
            if perm is None:
                sl = slice(i0, min(i0 + batch_size, n))
                batch = {"x": self.x[sl]}
                if self.y is not None:
                    batch["y"] = self.y[sl]
                for k, v in self.extras.items():
                    batch[k] = v[sl]
            else:
                idx = perm[i0:i0 + batch_size]
                batch = {"x": self.x.index_select(0, idx)}
                if self.y is not None:
                    batch["y"] = self.y.index_select(0, idx)
                for k, v in self.extras.items():
                    batch[k] = v.index_select(0, idx)
            yield batch


def _check_extras(extras, n: int, name: str) -> dict[str, torch.Tensor]:
    """The per-sample tensors beside ``x``: a dict of tensors with ``n`` rows (floats become float32)."""
    if extras is None:
        return {}
    if not isinstance(extras, dict):
        raise DataError(f"{name}: extras must be a dict of name -> tensor, got {type(extras).__name__}")
    out = {}
    for k, v in extras.items():
        if not isinstance(k, str) or k in ("x", "y"):
            raise DataError(f"{name}: extra {k!r} is not allowed (names must be strings other than 'x' and 'y')")
        v = torch.as_tensor(v)
        if v.ndim < 1 or len(v) != n:
            raise DataError(f"{name}: extra {k!r} has shape {tuple(v.shape)} but the data has {n} samples; give "
                            f"one row per sample")
        out[k] = (v.to(torch.float32) if v.is_floating_point() else v).contiguous()
    return out
