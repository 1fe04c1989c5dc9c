"""genlab: train, evaluate and apply the classic deep generative models on PyTorch.

>>> import genlab
>>> run = genlab.train("vae", "digits", out="runs/vae-digits", config={"trainer": {"epochs": 5}})
>>> model = genlab.load("runs/vae-digits")
>>> images = model.sample(16)
>>> run = genlab.open_run("runs/vae-digits")   # the typed run: config, data info, splits, model, metrics
>>> res = genlab.tune("vae", "digits", trials=20)  # Optuna search: res.best_config, OUT/best.yaml, the report
"""
__version__ = "0.1.0"

import logging as _logging

from .data import TensorDataset, list_datasets, load_dataset
from .errors import GenlabError
from .evaluation import evaluate_model, evaluate_run, evaluate_sets
from .io.serialize import load, save_model
from .registry import list_models, register_model
from .runs import DataInfo, Run, RunFolder, open_run, train
from .tuning import tune  # Optuna is imported only when a study runs (pip install 'genlab[tune]')

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = ["__version__", "train", "load", "save_model", "list_models", "list_datasets", "load_dataset",
           "register_model", "TensorDataset", "GenlabError", "Run", "evaluate_model", "evaluate_run",
           "evaluate_sets", "open_run", "RunFolder", "DataInfo", "tune"]
