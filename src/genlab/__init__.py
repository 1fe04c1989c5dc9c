"""genlab: train, evaluate and apply the classic deep generative models on PyTorch.

>>> import genlab
>>> run = genlab.train("vae", "digits", out="runs/vae-digits", config={"trainer": {"epochs": 5}})
>>> model = genlab.load("runs/vae-digits")
>>> images = model.sample(16)
>>> run = genlab.open_run("runs/vae-digits")   # the typed run: config, data info, splits, model, metrics
>>> res = genlab.tune("vae", "digits", trials=20)  # Optuna search: res.best_config, OUT/best.yaml, the report
"""
__version__ = "0.1.0"

import importlib as _importlib
import logging as _logging

#: public name -> module that defines it. Imported on first use (PEP 562), so ``import genlab`` -- and with it
#: ``genlab --help`` and ``genlab models`` -- does not import torch.
_LAZY = {
    "TensorDataset": ".data", "list_datasets": ".data", "load_dataset": ".data",
    "GenlabError": ".errors",
    "evaluate_model": ".evaluation", "evaluate_run": ".evaluation", "evaluate_sets": ".evaluation",
    "load": ".io.serialize", "save_model": ".io.serialize",
    "list_models": ".registry", "register_model": ".registry",
    "DataInfo": ".runs", "Run": ".runs", "RunFolder": ".runs", "open_run": ".runs", "train": ".runs",
    "tune": ".tuning",  # Optuna is imported only when a study runs (pip install 'genlab[tune]')
}

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = ["__version__", "train", "load", "save_model", "list_models", "list_datasets", "load_dataset",
           "register_model", "TensorDataset", "GenlabError", "Run", "evaluate_model", "evaluate_run",
           "evaluate_sets", "open_run", "RunFolder", "DataInfo", "tune"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
