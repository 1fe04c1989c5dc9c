"""One Trainer for every model, with callbacks, checkpoints, EMA and early stopping."""
from .callbacks import Callback
from .config import TrainerConfig
from .trainer import Trainer, TrainingDiverged, TrainResult, seed_everything, select_device

__all__ = ["Trainer", "TrainerConfig", "TrainResult", "TrainingDiverged", "Callback", "seed_everything",
           "select_device"]
