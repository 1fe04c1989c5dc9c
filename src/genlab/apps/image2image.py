"""Image-to-image applications as scikit-learn-style estimators: super-resolution, inpainting, colourisation and
general translation (sketch -> image), on the ``translates`` models (``srgan``, ``context-encoder``, ``colorizer``,
``pix2pix``).

>>> from genlab.apps import Upscaler
>>> up = Upscaler(factor=2, epochs=20).fit(X_train)          # X_train: HIGH-resolution target images
>>> X_low = up.downscale(X_test)                             # the training transform (block means)
>>> X_up = up.transform(X_low)                               # (N, C, H, W) in [0, 1]
>>> up.score_report(X_test)                                  # PSNR/SSIM of the model and of bicubic

Conventions:

* ``fit(X)`` takes the TARGET images (array ``(N, H, W)``/``(N, C, H, W)``/channels-last, uint8 or floats in
  [0, 1], or a :class:`~genlab.data.TensorDataset`); the sources are made by the estimator's pair transform
  (:func:`genlab.data.paired.make_pairs`: ``downsample:K``, ``mask:box|free``, ``grey``, ``edges``), seeded by
  ``random_state``. A paired data set (``extras["src"]``, e.g. folder pairs ``load_dataset("pairs:PATH")``) is
  used as it is. ``y`` is ignored.
* ``transform(src[, mask])`` returns the translated images, float32 in [0, 1], in the source's layout
  (``(N, H, W)`` in, ``(N, H, W)`` out for one-channel outputs). Inputs must have exactly the source shape the
  model was trained on: other sizes are **refused** with a one-line :class:`~genlab.errors.DataError` naming both
  shapes (no tiling: a patch-trained network sees no context across tile borders, so tiling would leave seams;
  re-train at the size you need, or cut the images yourself). A greyscale model given colour input, an upscale
  factor the model was not trained for, a mask of the wrong shape or with values other than 0/1: refused the
  same way.
* ``score(X)`` is higher-is-better: the PSNR (dB, data range 1, per image then averaged) of the outputs against
  the targets ``X``, whose sources are made by the estimator's transform. :meth:`ImageTranslator.score_report`
  adds SSIM (scikit-image's Gaussian variant, :func:`genlab.metrics.reconstruction.ssim`) and the same figures
  for the estimator's baseline: bicubic upscaling (Upscaler), the grey image as RGB (Colorizer), scikit-image's
  ``inpaint_biharmonic`` (Inpainter); the Inpainter also reports them over the missing pixels only
  (``psnr_missing``: the MSE pooled over all missing pixels, :func:`masked_psnr`; ``ssim_missing``:
  scikit-image's SSIM map averaged over the missing pixels of each image, then over images).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..data import TensorDataset
from ..data.paired import check_mask, free_masks, box_mask, luma, make_pairs, parse_spec
from ..errors import ConfigError, DataError
from ._base import ModelTransformer, as_dataset

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- metrics
def ssim_window(shape) -> int:
    """SSIM window: 11, or the largest odd size that fits the images (at least 3), as the Denoiser's."""
    side = min(shape[-2:])
    return max(3, min(11, side if side % 2 else side - 1))


def masked_psnr(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB, data range 1) over the masked pixels: ``10 log10(1 / MSE)`` with the MSE pooled over every missing
    pixel (all channels) of all images (pooled, not per image: a hole that is uniformly black in the target, common
    on MNIST, would give an infinite per-image PSNR to an exact fill). ``inf`` when the pooled MSE is 0."""
    m = mask.expand_as(target).to(torch.float64)
    cnt = float(m.sum())
    if cnt == 0:
        return float("nan")
    mse = float((((out.double() - target.double()) ** 2) * m).sum()) / cnt
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def biharmonic_inpaint(src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """scikit-image's ``restoration.inpaint_biharmonic`` of each image (``channel_axis=0``), clamped to [0, 1]:
    the non-learned inpainting baseline."""
    from skimage.restoration import inpaint_biharmonic
    a, m = src.double().cpu().numpy(), mask.cpu().numpy()[:, 0] > 0.5
    out = np.stack([inpaint_biharmonic(a[i], m[i], channel_axis=0) if m[i].any() else a[i] for i in range(len(a))])
    return torch.from_numpy(np.clip(out, 0, 1)).to(torch.float32)


def masked_ssim(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """SSIM over the masked pixels: scikit-image's SSIM map (Gaussian weights, sigma 1.5, population covariance,
    data range 1; channels averaged) averaged over the missing pixels of each image, then over images."""
    from skimage.metrics import structural_similarity
    win = ssim_window(tuple(target.shape))
    a, b, m = out.double().cpu().numpy(), target.double().cpu().numpy(), mask.cpu().numpy()[:, 0] > 0.5
    vals = []
    for i in range(len(a)):
        if not m[i].any():
            continue
        _, smap = structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False, win_size=win, full=True)
        vals.append(float(smap.mean(0)[m[i]].mean()))  # smap: (C, H, W)
    return float(np.mean(vals)) if vals else float("nan")


def image_metrics(out: torch.Tensor, target: torch.Tensor, prefix: str = "") -> dict:
    """``{prefix}psnr`` and ``{prefix}ssim`` of ``out`` against ``target`` (both ``(N, C, H, W)`` in [0, 1])."""
    from ..metrics.reconstruction import psnr, ssim
    return {f"{prefix}psnr": psnr(out, target),
            f"{prefix}ssim": ssim(out, target, win_size=ssim_window(tuple(target.shape)))}


def bicubic_upscale(src: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.interpolate(..., mode="bicubic", align_corners=False)`` by ``factor``, clamped to [0, 1] (the baseline
    the ``srgan`` generator adds its residual to)."""
    return F.interpolate(src, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)


def _layout(out: np.ndarray, X) -> np.ndarray:
    """Output images ``(N, C, H, W)`` in the layout of the caller's input ``X``: ``(N, H, W)`` for 3-D input when
    the output has one channel, channels-last for channels-last input, else ``(N, C, H, W)``."""
    if isinstance(X, TensorDataset):
        return out
    shape = tuple(X.shape) if hasattr(X, "shape") else np.shape(X)
    if len(shape) == 3:
        return out[:, 0] if out.shape[1] == 1 else out
    if len(shape) == 4 and shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        return np.ascontiguousarray(out.transpose(0, 2, 3, 1))
    return out


def _images(X, name: str) -> TensorDataset:
    """Images ``(N, C, H, W)`` in [0, 1] from an array-like or a data set (one-line DataError otherwise)."""
    if isinstance(X, TensorDataset):
        if X.kind != "image":
            raise DataError(f"{name}: expected images, got {X.kind} data of shape {X.sample_shape}")
        return X
    a = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if a.ndim not in (3, 4) or a.size == 0:
        raise DataError(f"{name}: expected images (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise DataError(f"{name}: image array has dtype {a.dtype}; give uint8 pixels or floats in [0, 1]")
    return as_dataset(a, name=name)


# ---------------------------------------------------------------------------------------------- the base
class ImageTranslator(ModelTransformer):
    """Base of the image-to-image estimators: trains a ``translates`` model on pairs made from target images by
    ``pair_spec()`` and maps sources to targets.

    Parameters
    ----------
    model : str, path or model
        A registered model with ``translates`` (trained in :meth:`fit`), a saved model / run folder, or a loaded
        model (``fit`` then trains nothing; the data only checks the shapes).
    model_config : dict, optional
        Settings of the model (``width``, ``adv_weight``, ``l1_only``, ...).
    epochs, batch_size, random_state, validation_fraction, trainer_config
        Training settings (see :class:`genlab.apps.ModelEstimator`); ``random_state`` also seeds free-form masks.
    verbose : bool or None
        Training progress display: ``True`` on, ``False`` off, ``None`` auto (on at a terminal outside CI).

    Attributes
    ----------
    model_ : GenerativeModel
        The trained model.
    input_shape_ : tuple
        Shape of one TARGET image ``(C, H, W)``.
    src_shape_ : tuple
        Shape of one source image, what :meth:`transform` takes.
    pair_ : str
        The pair transform the model was trained with (``None`` for a given paired data set).
    n_features_in_ : int
        Scalars per target image (``C*H*W``).
    """

    default_model: ClassVar[str] = "pix2pix"
    _needs = ("translates",)
    _preserves_dtype = ("float32",)
    _json_state = ("src_shape_", "pair_")
    _baseline_name: ClassVar[str] = ""

    def _init_training(self, model, model_config, epochs, batch_size, random_state, validation_fraction,
                       trainer_config, verbose):
        self.model = model
        self.model_config = model_config
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.trainer_config = trainer_config
        self.verbose = verbose

    # ------------------------------------------------------------------ hooks
    def pair_spec(self) -> str:
        """The :func:`~genlab.data.paired.make_pairs` transform of this estimator."""
        raise NotImplementedError

    def _check_params(self) -> None:
        parse_spec(self.pair_spec())

    def _check_model_pair(self, model) -> None:
        """Refuse a trained/loaded model whose pair does not fit this estimator's parameters."""

    def baseline(self, src: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        """The non-learned answer the model is compared with in :meth:`score_report` (``None``: no baseline)."""
        return None

    # ------------------------------------------------------------------ fitting
    def make_pairs(self, X) -> TensorDataset:
        """The paired data set the estimator trains and scores on: ``X`` (targets) under :meth:`pair_spec`
        (seeded by ``random_state``), or ``X`` itself when it is paired already."""
        ds = X if isinstance(X, TensorDataset) else _images(X, "X")
        if "src" in ds.extras:
            return ds
        return make_pairs(_images(ds, "X"), self.pair_spec(), seed=int(self.random_state or 0))

    def fit(self, X, y=None):
        """Train the model on pairs made from the target images ``X`` (or on the paired data set ``X``). Returns
        ``self``; ``y`` is ignored. ``X=None`` with ``model=`` a saved model folder or a model object takes that
        model as it is."""
        self._check_params()
        self.check_model()
        if X is None:
            return self._fit_given_model()
        paired = isinstance(X, TensorDataset) and "src" in X.extras
        ds = self.make_pairs(X)
        self._check_X(ds, reset=True)
        model = self._fit_model(ds)
        self._check_model_pair(model)
        self.src_shape_ = tuple(int(s) for s in model.src_shape)
        if "src" in ds.extras and tuple(ds.extras["src"].shape[1:]) != self.src_shape_:
            raise DataError(f"the model takes sources of shape {self.src_shape_} but the pairs have sources of shape "
                            f"{tuple(ds.extras['src'].shape[1:])}; give data made with the model's pair transform")
        self.pair_ = None if paired else self.pair_spec()
        return self

    def _fit_given_model(self):
        """``fit(None)``: take a saved model / run folder or a model object as it is (nothing to train)."""
        from ..io.serialize import load
        from ..models.base import GenerativeModel
        spec = self._model_param()
        if isinstance(spec, GenerativeModel):
            model = spec.eval()
        elif isinstance(spec, (str, Path)) and not self._trains_by_name() and Path(spec).exists():
            model = load(spec)
        else:
            raise ConfigError(f"fit(None) needs model= a saved model folder or a model object, got {spec!r}; give "
                              "target images to train a registered model on")
        self._require(model)
        self._check_model_pair(model)
        self.model_ = model.eval()
        self.input_shape_ = tuple(int(s) for s in model.shape)
        self.kind_ = "image"
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.src_shape_ = tuple(int(s) for s in model.src_shape)
        self.pair_ = None
        return self

    @classmethod
    def load(cls, path):
        """Rebuild an estimator written by :meth:`save` (``src_shape_`` back as a tuple)."""
        est = super().load(path)
        est.src_shape_ = tuple(int(s) for s in est.src_shape_)
        return est

    # ------------------------------------------------------------------ inference
    def _src(self, src, mask=None) -> tuple[TensorDataset, torch.Tensor | None]:
        self._check_fitted()
        ds = _images(src, "src")
        m = None
        if mask is not None:
            mm = mask.detach().cpu() if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
            if mm.ndim == 3:
                mm = mm[:, None]
            m = mm.to(torch.float32)
        return ds, m

    def _translate(self, src: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bs = int(getattr(self, "batch_size", 128) or 128)
        return self.model_.translate(src, mask, batch_size=max(bs, 64)).float().cpu()

    def transform(self, src, mask=None) -> np.ndarray:
        """The translated images of the sources ``src`` (``mask``: 1 = missing, for inpainting models), float32 in
        [0, 1] in ``src``'s layout. Sizes other than the trained source shape are refused (see the module notes)."""
        ds, m = self._src(src, mask)
        return _layout(self._translate(ds.x, m).numpy(), src)

    # ------------------------------------------------------------------ scores
    def score_report(self, X) -> dict:
        """PSNR/SSIM of the outputs for the target images ``X`` (sources made by the estimator's transform, or the
        sources of a paired data set), and of the baseline (``baseline_psnr``, ``baseline_ssim``, named in
        ``baseline``)."""
        self._check_fitted()
        ds = self.make_pairs(X)
        src, mask = ds.extras["src"], ds.extras.get("mask")
        out = self._translate(src, mask if getattr(self.model_, "with_mask", False) else None)
        return self.report(out, ds.x, src, mask)

    def report(self, out, target, src, mask=None) -> dict:
        """PSNR/SSIM of the outputs ``out`` against ``target`` and of :meth:`baseline` of ``src`` (and over the
        missing pixels when ``mask`` is given); all ``(N, C, H, W)`` tensors in [0, 1]."""
        out, target, src = (torch.as_tensor(np.asarray(t)).float() if not isinstance(t, torch.Tensor) else t.float()
                            for t in (out, target, src))
        if tuple(out.shape) != tuple(target.shape):
            raise DataError(f"outputs of shape {tuple(out.shape)} but targets of shape {tuple(target.shape)}; give "
                            "the targets of the same images")
        rep = {"samples": len(out), **image_metrics(out, target)}
        base = self.baseline(src, mask)
        if base is not None:
            rep["baseline"] = self._baseline_name
            rep.update(image_metrics(base, target, "baseline_"))
        if mask is not None:
            rep["psnr_missing"] = masked_psnr(out, target, mask)
            rep["ssim_missing"] = masked_ssim(out, target, mask)
            if base is not None:
                rep["baseline_psnr_missing"] = masked_psnr(base, target, mask)
                rep["baseline_ssim_missing"] = masked_ssim(base, target, mask)
        return rep

    def score(self, X, y=None) -> float:
        """PSNR (dB) of the outputs against the target images ``X`` (higher is better; ``y`` ignored)."""
        return self.score_report(X)["psnr"]


# ---------------------------------------------------------------------------------------------- estimators
class Upscaler(ImageTranslator):
    """Super-resolution by an integer ``factor`` (``srgan`` by default), trained on ``downsample:factor`` pairs.

    Parameters
    ----------
    factor : int
        Upscale factor (2, 3, 4, 8); target sides must divide by it.
    method : {"area", "bicubic"}
        How the training sources are shrunk (block means or antialiased bicubic); :meth:`downscale` uses it too.
    model, model_config, epochs, batch_size, random_state, validation_fraction, trainer_config, verbose
        See :class:`ImageTranslator`.
    """

    default_model = "srgan"
    _json_state = ("src_shape_", "pair_", "factor_")
    _baseline_name = "bicubic"

    def __init__(self, *, factor=2, method="area", model="srgan", model_config=None, epochs=30, batch_size=64,
                 random_state=0, validation_fraction=0.1, trainer_config=None, verbose=None):
        self.factor = factor
        self.method = method
        self._init_training(model, model_config, epochs, batch_size, random_state, validation_fraction,
                            trainer_config, verbose)

    def pair_spec(self) -> str:
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, np.integer)) or self.factor < 2:
            raise ConfigError(f"factor must be an integer >= 2, got {self.factor!r}")
        if self.method not in ("area", "bicubic"):
            raise ConfigError(f"method must be area or bicubic, got {self.method!r}")
        return f"downsample:{int(self.factor)}" + (":bicubic" if self.method == "bicubic" else "")

    def _check_model_pair(self, model) -> None:
        (_, h, w), (_, hs, ws) = tuple(model.shape), tuple(model.src_shape)
        got = h // hs if hs and h % hs == 0 and w % ws == 0 and h // hs == w // ws else None
        if got != int(self.factor):
            raise DataError(f"the model upscales {hs}x{ws} -> {h}x{w} (x{got or f'{h / hs:g}'}) but factor="
                            f"{self.factor}; use Upscaler(factor={got}) or a x{self.factor} model")
        self.factor_ = got

    def downscale(self, X) -> np.ndarray:
        """``X`` shrunk by ``factor`` with the training transform (``method``), float32 in [0, 1], ``X``'s layout."""
        ds = _images(X, "X")
        src = make_pairs(ds, self.pair_spec()).extras["src"]
        return _layout(src.numpy(), X)

    def transform(self, src, mask=None) -> np.ndarray:
        """Upscaled ``src`` (``(N, C, H/k, W/k)`` -> ``(N, C, H, W)``). An input of another size is refused,
        naming the factor it would need."""
        ds, _ = self._src(src)
        if mask is not None:
            raise DataError("Upscaler.transform takes no mask; drop mask=")
        (cs, hs, ws), h = self.src_shape_, self.input_shape_[1]
        got = ds.sample_shape
        if got != tuple(self.src_shape_) and got[0] == cs and got[1:] != (hs, ws):
            need = f"x{h / got[1]:g}" if got[1] else "?"
            raise DataError(f"src of shape {got}: this model upscales x{self.factor_} from {tuple(self.src_shape_)} "
                            f"to {tuple(self.input_shape_)}; a {need} upscale of {got[1]}x{got[2]} images needs a "
                            f"model trained for it (inputs are not tiled)")
        return _layout(self._translate(ds.x, None).numpy(), src)

    def baseline(self, src, mask):
        return bicubic_upscale(src, int(self.factor_))


class Inpainter(ImageTranslator):
    """Fill the missing pixels of images (image mode; the tabular :class:`~genlab.apps.Imputer` fills NaN cells
    of tables), with a ``context-encoder`` trained on ``mask:box`` or ``mask:free`` pairs.

    Parameters
    ----------
    mask : {"box", "free"}
        The training masks: the centre box (a quarter of the image) or seeded free-form strokes (15-35 %); see
        :mod:`genlab.data.paired`. :meth:`make_mask` draws them.
    model, model_config, epochs, batch_size, random_state, validation_fraction, trainer_config, verbose
        See :class:`ImageTranslator`.

    Notes
    -----
    :meth:`transform` takes the images with their mask (``(N, 1, H, W)`` or ``(N, H, W)``, 1 = missing, only 0/1);
    without ``mask=`` the missing pixels are the NaN pixels of the input (any channel NaN), or, when it has none
    and ``mask="box"``, the centre box. Known pixels are returned unchanged.
    """

    default_model = "context-encoder"
    _baseline_name = "biharmonic (scikit-image)"

    def __init__(self, *, mask="box", model="context-encoder", model_config=None, epochs=30, batch_size=64,
                 random_state=0, validation_fraction=0.1, trainer_config=None, verbose=None):
        self.mask = mask
        self._init_training(model, model_config, epochs, batch_size, random_state, validation_fraction,
                            trainer_config, verbose)

    def pair_spec(self) -> str:
        if self.mask not in ("box", "free"):
            raise ConfigError(f"mask must be box or free, got {self.mask!r}")
        return f"mask:{self.mask}"

    def make_mask(self, X, random_state=None) -> np.ndarray:
        """``(N, 1, H, W)`` float32 masks (1 = missing) of the estimator's kind for the images ``X`` (free-form masks
        seeded by ``random_state``, default the estimator's)."""
        ds = _images(X, "X")
        n, (h, w) = len(ds), ds.sample_shape[1:]
        if self.pair_spec() == "mask:box":
            return box_mask((h, w)).expand(n, 1, h, w).numpy().copy()
        seed = self.random_state if random_state is None else random_state
        return free_masks(n, (h, w), seed=int(seed or 0)).numpy()

    def resolve_mask(self, src, mask=None) -> tuple[TensorDataset, torch.Tensor]:
        """``(images, mask)`` as :meth:`transform` uses them: NaN pixels set to 0 and, without ``mask``, the mask
        of the NaN pixels (any channel) or, when there are none and ``mask="box"``, the centre box. The mask is
        checked: ``(N, 1, H, W)`` (or ``(N, H, W)``), only 0 and 1 (one-line :class:`DataError` otherwise)."""
        self._check_fitted()
        a = src.x.numpy() if isinstance(src, TensorDataset) else (
            src.detach().cpu().numpy() if isinstance(src, torch.Tensor) else np.asarray(src))
        if a.dtype.kind == "f" and np.isnan(a).any():  # NaN marks the missing pixels
            nan = np.isnan(a)
            if a.ndim == 4:
                chans_last = a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4)
                nan = nan.any(-1)[:, None] if chans_last else nan.any(1, keepdims=True)
            else:
                nan = nan[:, None]
            if mask is None:
                mask = nan.astype(np.float32)
            a = np.nan_to_num(a, nan=0.0)
        ds = src if isinstance(src, TensorDataset) else _images(a, "src")
        n, (h, w) = len(ds), ds.sample_shape[1:]
        if mask is None:
            if self.mask != "box":
                raise DataError("Inpainter(mask='free').transform needs mask= (N, 1, H, W), 1 = missing (or NaN in the "
                                "missing pixels); make_mask(X) draws the training kind")
            mask = box_mask((h, w)).expand(n, 1, h, w)
        _, m = self._src(ds, mask)
        check_mask(m, (n, 1, h, w), name="mask")
        return ds, m

    def transform(self, src, mask=None) -> np.ndarray:
        """``src`` with its missing pixels filled (known pixels unchanged), float32 in [0, 1], ``src``'s layout.
        The mask: ``mask=``, else the NaN pixels, else (``mask="box"``) the centre box (:meth:`resolve_mask`)."""
        ds, m = self.resolve_mask(src, mask)
        out = self._translate(ds.x * (1 - m), m).numpy()  # missing pixels are 0, as in training
        return _layout(out, src)

    def baseline(self, src, mask):
        return biharmonic_inpaint(src, mask)


class Colorizer(ImageTranslator):
    """Colourise grey images with the ``colorizer`` (or ``pix2pix``) trained on ``grey`` pairs of colour images
    (the grey input is the BT.601 luma, :func:`genlab.data.paired.luma`; :meth:`to_grey` makes it).

    Parameters
    ----------
    model, model_config, epochs, batch_size, random_state, validation_fraction, trainer_config, verbose
        See :class:`ImageTranslator`.
    """

    default_model = "colorizer"
    _baseline_name = "grey input as RGB"

    def __init__(self, *, model="colorizer", model_config=None, epochs=30, batch_size=64, random_state=0,
                 validation_fraction=0.1, trainer_config=None, verbose=None):
        self._init_training(model, model_config, epochs, batch_size, random_state, validation_fraction,
                            trainer_config, verbose)

    def pair_spec(self) -> str:
        return "grey"

    def to_grey(self, X) -> np.ndarray:
        """The BT.601 luma of colour images ``X``: ``(N, 1, H, W)``, or ``(N, H, W, 1)`` for channels-last input."""
        ds = _images(X, "X")
        if ds.sample_shape[0] != 3:
            raise DataError(f"X: to_grey needs colour images (C=3), got shape {ds.sample_shape}")
        return _layout(luma(ds.x).numpy(), X)

    def baseline(self, src, mask):
        return src.expand(-1, 3, -1, -1)

    def report(self, out, target, src, mask=None) -> dict:
        """As :meth:`ImageTranslator.report`, plus the colourfulness (:func:`colourfulness`) of the outputs, the
        targets and the baseline (0 for grey)."""
        rep = super().report(out, target, src, mask)
        out, target = torch.as_tensor(np.asarray(out)), torch.as_tensor(np.asarray(target))
        rep.update({"colourfulness": colourfulness(out), "colourfulness_target": colourfulness(target),
                    "colourfulness_baseline": 0.0})
        return rep


def colourfulness(x: torch.Tensor) -> float:
    """Hasler and Suesstrunk's colourfulness ``M = sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2)`` with
    ``rg = R - G`` and ``yb = (R + G) / 2 - B`` on 0..255 pixels, per image (population std), averaged; 0 for grey."""
    x = x.double() * 255
    rg = x[:, 0] - x[:, 1]
    yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    s = torch.sqrt(rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False))
    m = torch.sqrt(rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2)
    return float((s + 0.3 * m).mean())


class Translator(ImageTranslator):
    """General image-to-image translation (``pix2pix`` by default), trained on pairs made by ``pair`` (default
    ``edges``: sketch -> image) or on a paired data set (folder pairs ``load_dataset("pairs:PATH")``).

    Parameters
    ----------
    pair : str
        A :func:`~genlab.data.paired.make_pairs` transform: ``edges[:sobel|canny]``, ``grey``, ``downsample:K``,
        ``mask:box|free``. Ignored when ``fit`` gets a paired data set.
    model, model_config, epochs, batch_size, random_state, validation_fraction, trainer_config, verbose
        See :class:`ImageTranslator`.
    """

    default_model = "pix2pix"

    def __init__(self, *, pair="edges", model="pix2pix", model_config=None, epochs=30, batch_size=64,
                 random_state=0, validation_fraction=0.1, trainer_config=None, verbose=None):
        self.pair = pair
        self._init_training(model, model_config, epochs, batch_size, random_state, validation_fraction,
                            trainer_config, verbose)

    def pair_spec(self) -> str:
        parse_spec(self.pair)
        return self.pair

    def make_sources(self, X) -> np.ndarray:
        """The sources ``(N, Cs, Hs, Ws)`` of the target images ``X`` under ``pair`` (e.g. their edge maps), float32
        in [0, 1]."""
        return make_pairs(_images(X, "X"), self.pair_spec(), seed=int(self.random_state or 0)).extras["src"].numpy()

    def transform(self, src, mask=None) -> np.ndarray:
        ds, m = self._src(src, mask)
        if m is not None:
            check_mask(m, (len(ds), 1, *self.input_shape_[1:]), name="mask")
        out = self._translate(ds.x, m).numpy()
        return _layout(out, src)


__all__ = ["ImageTranslator", "Upscaler", "Inpainter", "Colorizer", "Translator", "colourfulness", "masked_psnr",
           "masked_ssim", "bicubic_upscale", "biharmonic_inpaint", "image_metrics"]
