"""Applications as scikit-learn-style estimators (see :mod:`genlab.apps._base` for the shared rules).

>>> from genlab.apps import AnomalyDetector
>>> det = AnomalyDetector(model="ae", contamination=0.05, epochs=30).fit(X_train)
>>> det.predict(X_test)            # +1 inlier, -1 outlier

Sign convention (scikit-learn's): ``score_samples`` is higher for more normal samples.
"""
from __future__ import annotations

import importlib

from ._base import ModelEstimator, as_dataset

#: public name -> module that defines it (imported on first use, so ``import genlab`` stays light)
_LAZY = {
    "AnomalyDetector": "anomaly",
    "Denoiser": "denoise",
    "Imputer": "impute",
    "Compressor": "compress",
    "Augmenter": "augment",
    "LatentExplorer": "latent",
    "lerp": "latent",
    "slerp": "latent",
    "Upscaler": "image2image",
    "Inpainter": "image2image",
    "Colorizer": "image2image",
    "Translator": "image2image",
}

__all__ = ["ModelEstimator", "as_dataset", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
