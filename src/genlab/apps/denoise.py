"""Denoising with a denoising autoencoder (``denoising-ae``), as a scikit-learn-style transformer.

>>> from genlab.apps import Denoiser
>>> den = Denoiser(noise="gaussian", level=0.2, epochs=50).fit(X_clean_train)
>>> X_noisy = den.add_noise(X_test, random_state=0)       # same noise model as in training
>>> X_denoised = den.transform(X_noisy)
>>> den.score(X_test, X_noisy=X_noisy)                  # PSNR in dB (images)

Conventions:

* ``noise`` / ``level`` are the ``denoising-ae``'s (:class:`genlab.models.ae_family.DenoisingAEConfig`):
  ``gaussian`` adds N(0, level^2) (images in [0, 1], clamped; tabular in standardised units),
  ``salt_pepper`` sets each entry with probability ``level`` to the low or high end of the range (half each),
  ``mask`` sets each entry with probability ``level`` to 0 (black for images, the column mean for tabular).
  The model is trained on clean data, corrupted on the fly; :meth:`Denoiser.add_noise` draws the very same
  corruption (:func:`genlab.models.ae_family.corrupt`).
* **Entries the noise cannot have produced are kept** (``keep_clean=True``, images only): salt-and-pepper
  noise only writes 0 or 1, so a pixel with any other value is clean and is returned as given; masking only
  writes 0, so every nonzero pixel is clean. The model's output replaces only the pixels that may be
  corrupted. This is the Bayes answer for those pixels (their clean value is known exactly), and what a
  switching median filter does with a local median; it assumes the input carries the estimator's ``noise``.
  Gaussian noise touches every pixel: nothing is kept.
* ``transform`` returns images in [0, 1] (float32, in the caller's layout) or tabular rows in raw units.
* ``score`` is higher-is-better: PSNR in dB for images (data range 1, per-image PSNR averaged), and the
  negative MSE in standardised units for tabular data. :meth:`Denoiser.score_report` gives PSNR, SSIM and
  MSE of the noisy input and of the denoised output (images), or the two MSEs (tabular).
* SSIM uses an 11-pixel Gaussian window, or the largest odd window that fits smaller images (7 for 8x8).
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ..errors import ConfigError
from ._base import ModelTransformer, model_names, restore_layout

log = logging.getLogger(__name__)

NOISES = ("gaussian", "salt_pepper", "mask")
#: other spellings accepted wherever a noise name is parsed (the prose name of ``salt_pepper``)
NOISE_ALIASES = {"salt-and-pepper": "salt_pepper", "salt_and_pepper": "salt_pepper", "salt-pepper": "salt_pepper"}


def noise_name(noise):
    """The canonical noise name: ``salt-and-pepper`` (and ``salt_and_pepper``, ``salt-pepper``) ->
    ``salt_pepper``; other values unchanged (checked by :func:`check_noise`)."""
    return NOISE_ALIASES.get(noise, noise) if isinstance(noise, str) else noise


def check_noise(noise, level) -> float:
    """``level`` as a float after checking ``noise`` (aliases of :data:`NOISE_ALIASES` accepted) and its range;
    one-line :class:`ConfigError` otherwise."""
    noise = noise_name(noise)
    if noise not in NOISES:
        raise ConfigError(f"noise must be one of {', '.join(NOISES)}, got {noise!r} (salt-and-pepper is accepted as "
                          "salt_pepper)")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(level)):
        raise ConfigError(f"level must be a finite number, got {level!r}")
    level = float(level)
    if noise == "gaussian" and not level > 0:
        raise ConfigError(f"level (gaussian sigma) must be > 0, got {level}; e.g. level=0.2")
    if noise != "gaussian" and not 0 < level < 1:
        raise ConfigError(f"level ({noise} probability) must be in (0, 1), got {level}; e.g. level=0.2")
    return level


def ssim_window(shape: tuple[int, ...]) -> int:
    """SSIM window: 11, or the largest odd size that fits ``(C, H, W)`` images (at least 3)."""
    side = min(shape[-2:])
    return max(3, min(11, side if side % 2 else side - 1))


def image_report(clean: torch.Tensor, noisy: torch.Tensor, denoised: torch.Tensor) -> dict:
    """PSNR (dB), SSIM and MSE of ``noisy`` and ``denoised`` against ``clean``, all ``(N, C, H, W)`` in [0, 1]."""
    from ..metrics.reconstruction import mse, psnr, ssim
    win = ssim_window(tuple(clean.shape))
    return {"psnr_noisy": psnr(noisy, clean), "psnr_denoised": psnr(denoised, clean),
            "ssim_noisy": ssim(noisy, clean, win_size=win), "ssim_denoised": ssim(denoised, clean, win_size=win),
            "mse_noisy": mse(noisy, clean), "mse_denoised": mse(denoised, clean), "ssim_window": win}


def clean_entries(x: torch.Tensor, noise: str, kind: str) -> torch.Tensor | None:
    """Where ``x`` (images in [0, 1]) holds values that ``noise`` cannot have written, i.e. certainly clean
    pixels: not 0 or 1 for ``salt_pepper``, nonzero for ``mask``. ``None`` for gaussian noise and tabular data
    (every entry may be corrupted)."""
    if kind != "image" or noise == "gaussian":
        return None
    if noise == "salt_pepper":
        return (x != 0) & (x != 1)
    return x != 0


def _corrupts_inputs(name: str) -> bool:
    """Whether the registered model ``name`` corrupts its training inputs (its config has ``noise`` and ``level``)."""
    from dataclasses import fields, is_dataclass

    from ..registry import get_model_entry
    cfg = get_model_entry(name).config_cls
    return is_dataclass(cfg) and {"noise", "level"} <= {f.name for f in fields(cfg)}


class Denoiser(ModelTransformer):
    """Remove noise with a denoising autoencoder trained on clean data.

    Parameters
    ----------
    noise : {"gaussian", "salt_pepper", "mask"}
        Corruption the model learns to undo (see the module notes for each); ``"salt-and-pepper"`` is accepted
        as an alias of ``"salt_pepper"``.
    level : float
        Gaussian sigma (> 0; model units: [0, 1] images, standardised tabular), or the probability in
        (0, 1) that an entry is corrupted (``salt_pepper``, ``mask``).
    model : str, path or model
        ``"denoising-ae"`` (trained in :meth:`fit` with ``noise``/``level``), a saved model / run folder,
        or a loaded model (any model with ``reconstruct``; ``fit`` then trains nothing).
    model_config : dict, optional
        Extra ``denoising-ae`` settings (``latent_dim``, ``arch``, ...); ``noise``/``level`` go here as
        parameters of the estimator, not in ``model_config``.
    keep_clean : bool, default True
        Return unchanged the pixels that ``noise`` cannot have produced (salt-and-pepper: values other than
        0 and 1; mask: nonzero values) and denoise only the others (images; no effect for gaussian noise or
        tabular data).
    epochs, batch_size, random_state, validation_fraction, trainer_config
        Training settings (see :class:`genlab.apps.ModelEstimator`).
    verbose : bool or None, default None
        Show the training progress display (scikit-learn's name): ``True`` on, ``False`` off, ``None`` auto
        (on when stderr is a terminal and ``CI`` is not set; ``GENLAB_PROGRESS=1``/``0`` overrides auto).

    Attributes
    ----------
    model_ : GenerativeModel
        The wrapped, trained model.
    input_shape_ : tuple
        Shape of one sample (``(C, H, W)`` or ``(D,)``).
    kind_ : str
        ``"image"`` or ``"tabular"``.
    n_features_in_ : int
        Scalars per sample (``D``, or ``C*H*W`` for images).
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names or a CSV with a header
        (``TensorDataset.columns``); data with other names, or in another order, is then refused.
    """

    default_model = "denoising-ae"
    _needs = ("can_reconstruct",)
    _preserves_dtype = ("float32",)  # transform returns float32 (images in [0, 1], tabular rows)

    def __init__(self, *, noise="gaussian", level=0.2, model="denoising-ae", model_config=None, keep_clean=True,
                 epochs=50, batch_size=128, random_state=0, validation_fraction=0.1, trainer_config=None,
                 verbose=None):
        self.noise = noise
        self.level = level
        self.model = model
        self.model_config = model_config
        self.keep_clean = keep_clean
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.validation_fraction = validation_fraction
        self.trainer_config = trainer_config
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Train the ``denoising-ae`` on clean ``X`` (images or tabular; no NaN). Returns ``self``.

        A registered name must reconstruct (``can_reconstruct``) and corrupt its training inputs itself: its
        config has ``noise`` and ``level`` fields (``denoising-ae``, or a model of another package built the same
        way), which ``fit`` sets from the estimator's parameters."""
        level = check_noise(self.noise, self.level)
        if not isinstance(self.keep_clean, (bool, np.bool_)):
            raise ConfigError(f"keep_clean must be True or False, got {self.keep_clean!r}")
        self.check_model()
        spec = self._model_param()
        if self._trains_by_name() and not _corrupts_inputs(str(spec)):
            ok = [n for n in model_names() if _corrupts_inputs(n)]
            raise ConfigError(f"Denoiser trains a model that corrupts its inputs in training (noise and level in its "
                              f"config: {', '.join(ok) or 'none registered'}), not {spec!r}; use "
                              "model='denoising-ae' or give a saved model folder")
        clash = sorted({"noise", "level"} & set(self.model_config or {}))
        if clash:
            raise ConfigError(f"model_config sets {clash[0]!r}; set it as Denoiser({clash[0]}=...) instead")
        ds = self._dataset(X, reset=True)
        self._fit_model(ds, config={"model": {"noise": noise_name(self.noise), "level": level}})
        cfg = getattr(self.model_, "config", None)
        noise = noise_name(self.noise)
        if getattr(cfg, "noise", noise) != noise or getattr(cfg, "level", level) != level:
            log.warning("Denoiser: the given model was trained with noise=%s level=%s, not noise=%s level=%s",
                        cfg.noise, cfg.level, self.noise, level)
        return self

    # ------------------------------------------------------------------ inference
    def _prepare(self, X):
        self._check_fitted()
        ds = self._dataset(X, reset=False)
        self._check_shape(ds)
        return ds, self._to_model(ds)

    @torch.no_grad()
    def _denoise(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Model-space ``(N, ...)`` -> model-space reconstructions (the model never corrupts in ``reconstruct``),
        with the entries the noise cannot have produced kept (``keep_clean``)."""
        m = self.model_.eval()
        out = torch.cat([m.reconstruct(xb.to(m.device)).float().cpu() for xb in x.split(batch_size)])
        clean = clean_entries(x, noise_name(self.noise), self.kind_) if self.keep_clean else None
        return out if clean is None else torch.where(clean, x.float(), out)

    def transform(self, X) -> np.ndarray:
        """Denoised copy of ``X``: images in [0, 1] (float32, ``X``'s layout) or tabular rows in raw units."""
        _, x = self._prepare(X)
        return restore_layout(self._from_model(self._denoise(x)), X)

    def add_noise(self, X, random_state=None) -> np.ndarray:
        """A noisy copy of ``X`` drawn from the estimator's ``noise`` / ``level`` (the model's corruption).

        ``random_state``: int seed (repeatable) or None (fresh randomness). Images may be corrupted before
        ``fit``; tabular data needs the fitted standardisation (noise is drawn in standardised units)."""
        from ..models.ae_family import corrupt
        level = check_noise(self.noise, self.level)
        ds = self._dataset(X, reset=False)
        if ds.kind == "tabular":
            if not hasattr(self, "model_"):
                raise ConfigError("tabular noise is drawn in the fitted model's standardised units; call fit(X) "
                                  "before add_noise")
            self._check_shape(ds)
            x = self._to_model(ds)
        else:
            if hasattr(self, "model_"):
                self._check_shape(ds)
            x = ds.x
        g = torch.Generator()
        if random_state is None:
            g.seed()
        else:
            g.manual_seed(int(random_state))
        noisy = corrupt(x, noise_name(self.noise), level, kind=ds.kind, generator=g)
        if ds.kind == "image":
            return restore_layout(noisy.numpy(), X)
        return self._from_model(noisy)

    # ------------------------------------------------------------------ scores
    def score_report(self, X_clean, X_noisy=None) -> dict:
        """Quality of the noisy input and of the denoised output against ``X_clean``.

        ``X_noisy`` defaults to ``add_noise(X_clean, random_state=self.random_state)``. Images: ``psnr_*``
        (dB), ``ssim_*`` and ``mse_*`` in [0, 1] units; tabular: ``mse_*`` in standardised units."""
        clean_ds, clean = self._prepare(X_clean)
        if X_noisy is None:
            X_noisy = self.add_noise(X_clean, random_state=self.random_state)
        noisy_ds, noisy = self._prepare(X_noisy)
        if len(noisy_ds) != len(clean_ds):
            raise ConfigError(f"X_noisy has {len(noisy_ds)} samples but X_clean has {len(clean_ds)}; give one noisy "
                              "sample per clean sample")
        den = self._denoise(noisy)
        if self.kind_ == "image":
            return image_report(clean, noisy, den.clamp(0, 1))
        return {"mse_noisy": float(((noisy - clean) ** 2).mean()), "mse_denoised": float(((den - clean) ** 2).mean())}

    def score(self, X, y=None, *, X_noisy=None) -> float:
        """Higher is better: PSNR (dB) of the denoised images, or minus the MSE (standardised units) for tabular
        data, with ``X`` the clean samples.

        ``y`` is ignored (scikit-learn's ``score(X, y)``; a Denoiser has no targets). The noisy copy is the
        keyword ``X_noisy`` and defaults to ``add_noise(X, random_state=self.random_state)``."""
        if y is not None and np.ndim(y) >= 2 and np.shape(y) == np.shape(X):
            raise ConfigError("Denoiser.score(X, y): y is ignored (scikit-learn's API) but it has the shape of X; "
                              "pass the noisy copy by keyword: score(X, X_noisy=X_noisy)")
        rep = self.score_report(X, X_noisy)
        return rep["psnr_denoised"] if self.kind_ == "image" else -rep["mse_denoised"]
