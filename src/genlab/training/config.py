"""Trainer configuration."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import check


#: most epochs one run may ask for: 10^7 (10^6 is the usual "until max_steps / max_seconds"); 1e11 is a typo that
#: would never end, refused before anything is built
MAX_EPOCHS = 10_000_000


@dataclass
class TrainerConfig:
    """Everything about *how* to train (the model config says *what*).

    precision: ``auto`` measures fp32 vs bf16 autocast on CPU (and uses bf16 where supported on CUDA);
    ``fp16`` is CUDA-only (with a gradient scaler). channels_last: ``auto`` measures it for image models; ``true``/``false`` force it.
    compile: ``torch.compile`` the model's networks (:mod:`genlab.training.compile`): ``false`` (default),
    ``true``, ``auto`` (off: measured slower than eager on an H200 and on the CPU); a graph that fails to compile
    runs eagerly, and models with gradient penalties stay eager, each with a warning.
    seed: seeds the weight initialisation (``genlab.train`` seeds Python, NumPy and torch with it before building
    the model) and the training noise. data_seed: seeds the shuffling order; ``null`` = ``seed``.
    num_threads: torch's intra-op CPU threads during ``fit`` (restored afterwards); ``null`` =
    ``OMP_NUM_THREADS`` when set, else the cores this process may use (``os.sched_getaffinity``), at most 16.
    monitor: the value early stopping and the ``best`` checkpoint follow, ``val/<key>`` or ``train/<key>``
    (epoch means). ``null`` = the model's choice (``val/loss`` for autoencoders and VAEs, ``val/fid`` for
    GANs where the FID monitor runs: data with a genlab feature net, or tabular data; none for other GANs,
    whose last weights are kept). Without validation data ``val/loss`` falls back to ``train/loss``.
    fid_samples: the sample-quality monitor (any model that can sample): at each validation, the FID of
    ``fid_samples`` samples against the validation split (genlab feature net of the image shape, or the
    standardised columns of tabular data), logged as ``val/fid`` with the class coverage (``val/div_entropy``,
    ``val/div_classes``) and for conditional models ``val/cond_acc``; ``0`` = off.
    monitor_every: every N steps (``0`` = off) the diversity monitor draws ``monitor_samples`` samples and logs
    ``div_entropy``/``div_classes`` (feature-net data) or ``div_ratio`` (mean pairwise distance of samples over
    that of the real batch); after ``collapse_warmup`` steps a value below ``collapse_threshold`` logs a
    mode-collapse warning.
    mode: ``min`` or ``max``; ``null`` = the model's choice (``min`` for loss and FID).
    sample_every: write ``samples/epoch-NNNN.png`` from a fixed noise batch every N epochs (image models that
    can sample; needs a run folder). ``null`` = every epoch for GANs, every ``max(1, epochs // 10)`` epochs
    for other samplers, and the last epoch, each skipped while it would take more than ``chore_overhead`` of the
    time; ``0`` = never.
    lr_schedule: ``constant``, ``cosine`` (to 0) or ``linear`` (to 0), after ``warmup_steps`` linear warm-up.
    The decay runs over the run's steps (``epochs`` x batches, or ``max_steps``) or, with ``max_seconds``, over
    the time budget when that is further along: the learning rate reaches 0 where the run ends.
    max_seconds: a time budget: training stops after the step during which this many seconds have passed since
    ``fit`` began (the probe and validations included; a resumed run counts the seconds its checkpoint had
    used), and the run then ends as at ``max_steps`` (last epoch record, validation, checkpoints, export). Where
    it stops depends on the machine's speed, so a run with a budget is not repeatable step for step; ``null`` =
    no budget.
    checkpoint_every: also write ``checkpoints/step-N`` (and refresh ``last``) every N steps.
    chore_overhead: the largest share of the training time each optional epoch-end chore may take: the
    ``checkpoints/last`` written at epoch ends and the sample grids of ``sample_every: null``. An epoch end skips a
    chore while less than (its previous run's seconds) / ``chore_overhead`` have passed since that run (tiny data
    sets: a 27 MB ``dcgan`` checkpoint after every 2-step epoch took 18 % of the time, a sample grid after every
    1-step epoch 20 %). The first epoch end of a ``fit`` and the run's end (early stops included) always run both;
    Ctrl-C and ``checkpoint_every`` always write ``last``, and under torchrun every epoch end writes it (the ranks'
    clocks differ); an explicit ``sample_every: N`` is kept exactly. ``null`` = every due epoch end. A hard kill
    loses at most about 1 / ``chore_overhead`` times one write of progress (20 x at the default 0.05).
    log_to: experiment trackers fed with every record of ``metrics.jsonl`` (scalars), the sample grids and
    histograms of the codes: a list of ``tensorboard`` and ``mlflow``, or a comma string
    (``trainer.log_to=tensorboard,mlflow``); empty = none. See docs/tracking.md.
    log_dir: where the trackers write: TensorBoard event files go in ``log_dir`` (default ``RUN/tensorboard``),
    MLflow's local store in ``log_dir/mlruns`` (default ``RUN/mlruns``; ``MLFLOW_TRACKING_URI`` wins when set).
    Required with ``log_to`` when training without a run folder.
    ddp_backend: the ``torch.distributed`` backend when the run is launched by torchrun (``WORLD_SIZE`` > 1):
    ``auto`` = ``nccl`` on CUDA, ``gloo`` on CPU. sync_batchnorm: convert BatchNorm layers to ``SyncBatchNorm``
    (batch statistics over the global batch; CUDA only). ddp_timeout: seconds a rank waits for the others in a
    collective before it fails. See docs/distributed.md.
    deterministic: measure nothing (``precision=auto`` means fp32, ``channels_last=auto`` means off) and run
    torch in deterministic-algorithms mode, so two runs with the same config, data and seed on the same machine
    and torch build give bit-identical weights and metrics.
    """

    epochs: int = 10
    batch_size: int = 128
    max_steps: int | None = None
    max_seconds: float | None = None
    drop_last: bool = False
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool | Literal["auto"] = False
    seed: int = 0
    data_seed: int | None = None
    num_threads: int | None = None
    grad_clip: float | None = None
    ema_decay: float | Literal["auto"] | None = "auto"
    ema_rampup: float | None = None
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    val_every: int = 1
    monitor: str | None = None
    mode: Literal["min", "max"] | None = None
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    checkpoint_every: int | None = None
    keep_step_checkpoints: int = 3
    chore_overhead: float | None = 0.05
    log_every: int = 10
    sample_every: int | None = None
    deterministic: bool = False
    fid_samples: int = 1000
    monitor_every: int = 100
    monitor_samples: int = 256
    collapse_threshold: float = 0.5
    collapse_warmup: int = 500
    log_to: list[str] | str = field(default_factory=list)
    log_dir: str | None = None
    # distributed training (torchrun; genlab.training.distributed)
    ddp_backend: Literal["auto", "gloo", "nccl"] = "auto"
    sync_batchnorm: bool = False
    ddp_timeout: float = 600.0

    def __post_init__(self):
        self.log_to = _tracker_names(self.log_to)
        check(1 <= self.epochs <= MAX_EPOCHS, f"trainer.epochs must be in [1, {MAX_EPOCHS:_}] (a budget beyond it would "
              f"not end; bound a long run with max_steps or max_seconds), got {self.epochs}")
        check(self.batch_size >= 1, f"trainer.batch_size must be >= 1, got {self.batch_size}")
        check(self.max_steps is None or self.max_steps >= 1, f"trainer.max_steps must be >= 1, got {self.max_steps}")
        check(self.max_seconds is None or self.max_seconds > 0,
              f"trainer.max_seconds must be > 0 (null = no time budget), got {self.max_seconds}")
        check(self.grad_clip is None or self.grad_clip > 0, f"trainer.grad_clip must be > 0, got {self.grad_clip}")
        check(self.ema_decay in (None, "auto") or 0 < self.ema_decay < 1,
              f"trainer.ema_decay must be in (0, 1), 'auto' (the model's default) or null (off), got "
              f"{self.ema_decay}")
        check(self.ema_rampup is None or 0 < self.ema_rampup <= 1,
              f"trainer.ema_rampup must be in (0, 1] (null = no ramp-up), got {self.ema_rampup}")
        check(self.ema_rampup is None or self.ema_decay is not None,
              "trainer.ema_rampup needs trainer.ema_decay (the decay it ramps up to); set both or neither")
        check(self.warmup_steps >= 0, f"trainer.warmup_steps must be >= 0, got {self.warmup_steps}")
        check(self.val_every >= 1, f"trainer.val_every must be >= 1, got {self.val_every}")
        check(self.patience is None or self.patience >= 1, f"trainer.patience must be >= 1, got {self.patience}")
        check(self.min_delta >= 0, f"trainer.min_delta must be >= 0, got {self.min_delta}")
        check(self.checkpoint_every is None or self.checkpoint_every >= 1,
              f"trainer.checkpoint_every must be >= 1, got {self.checkpoint_every}")
        check(self.keep_step_checkpoints >= 1, "trainer.keep_step_checkpoints must be >= 1")
        check(self.chore_overhead is None or 0 < self.chore_overhead <= 1,
              f"trainer.chore_overhead must be in (0, 1] (null = every epoch), got {self.chore_overhead}")
        check(self.log_every >= 1, f"trainer.log_every must be >= 1, got {self.log_every}")
        check(self.sample_every is None or self.sample_every >= 0,
              f"trainer.sample_every must be >= 0 (0 = never), got {self.sample_every}")
        check(self.num_threads is None or self.num_threads >= 1,
              f"trainer.num_threads must be >= 1 (null = automatic), got {self.num_threads}")
        check(self.fid_samples == 0 or self.fid_samples >= 2,
              f"trainer.fid_samples must be 0 (off) or >= 2, got {self.fid_samples}")
        check(self.monitor_every >= 0, f"trainer.monitor_every must be >= 0 (0 = off), got {self.monitor_every}")
        check(self.monitor_samples >= 2, f"trainer.monitor_samples must be >= 2, got {self.monitor_samples}")
        check(0 <= self.collapse_threshold <= 1,
              f"trainer.collapse_threshold must be in [0, 1], got {self.collapse_threshold}")
        check(self.collapse_warmup >= 0, f"trainer.collapse_warmup must be >= 0, got {self.collapse_warmup}")
        check(self.monitor is None or self.monitor.startswith(("val/", "train/")),
              f"trainer.monitor must look like val/<key> or train/<key>, got {self.monitor!r}")
        check(self.ddp_timeout > 0, f"trainer.ddp_timeout must be > 0 seconds, got {self.ddp_timeout}")

    def ema_for(self, model) -> tuple[float | None, float | None]:
        """``(decay, rampup)`` of the weights' EMA when training ``model``: ``ema_decay`` and ``ema_rampup`` as set,
        or for ``ema_decay='auto'`` the model's :attr:`~genlab.models.base.GenerativeModel.default_ema` (``None``:
        no EMA), with ``ema_rampup`` replacing its ramp-up when set."""
        if self.ema_decay != "auto":
            return self.ema_decay, self.ema_rampup
        default = getattr(model, "default_ema", None)
        if default is None:
            check(self.ema_rampup is None,
                  f"trainer.ema_rampup needs an EMA, and model {getattr(model, 'registry_name', '?')!r} keeps none by "
                  "default (trainer.ema_decay='auto'); set trainer.ema_decay too")
            return None, None
        return self.auto_ema(default)

    def auto_ema(self, default: tuple[float, float | None]) -> tuple[float, float | None]:
        """``(decay, rampup)`` that ``ema_decay='auto'`` keeps for a model whose default EMA is ``default``:
        ``ema_rampup``, when set, replaces the default's ramp-up."""
        decay, rampup = default
        return decay, self.ema_rampup if self.ema_rampup is not None else rampup


#: The experiment trackers ``trainer.log_to`` accepts (see :mod:`genlab.training.tracking`).
TRACKERS = ("tensorboard", "mlflow")


def _tracker_names(value: list[str] | str) -> list[str]:
    """``trainer.log_to`` as a list of known tracker names, in order, without repeats (a string is split on
    commas)."""
    names = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in names:
        name = str(raw).strip().lower()
        if not name:
            continue
        check(name in TRACKERS, f"trainer.log_to: unknown tracker {str(raw).strip()!r}; use "
                                f"{' and/or '.join(TRACKERS)} (e.g. trainer.log_to=tensorboard,mlflow)")
        if name not in out:
            out.append(name)
    return out
