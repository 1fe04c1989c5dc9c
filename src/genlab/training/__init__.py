"""One Trainer for every model, with callbacks, checkpoints, EMA, early stopping and sample-quality monitors."""
from .callbacks import Callback
from .config import TrainerConfig
from .monitors import DiversityMonitor, SampleQualityMonitor, default_monitors
from .trainer import Trainer, TrainingDiverged, TrainResult, default_threads, seed_everything, select_device

__all__ = ["Trainer", "TrainerConfig", "TrainResult", "TrainingDiverged", "Callback", "SampleQualityMonitor",
           "DiversityMonitor", "default_monitors", "default_threads", "seed_everything", "select_device"]
