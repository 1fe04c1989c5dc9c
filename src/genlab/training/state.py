"""Resume state: optimizers, schedulers, RNG states and counters as safetensors + JSON (no pickle)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..config import read_json
from ..errors import CheckpointError
from ..io.serialize import load_tensors

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"


def optimizer_to_parts(name: str, opt: torch.optim.Optimizer) -> tuple[dict, dict[str, torch.Tensor]]:
    """Split an optimizer state dict into JSON-able parts and tensors keyed ``optim/<name>/<pid>/<key>``."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{name}/{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return {"param_groups": sd["param_groups"], "scalars": scalars}, tensors


def optimizer_from_parts(name: str, opt: torch.optim.Optimizer, meta: dict, tensors: dict) -> None:
    state: dict[int, dict] = {}
    prefix = f"optim/{name}/"
    for key, v in tensors.items():
        if key.startswith(prefix):
            pid, k = key[len(prefix):].split("/", 1)
            state.setdefault(int(pid), {})[k] = v
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    groups = meta["param_groups"]
    for g in groups:
        for k, v in list(g.items()):
            if k == "betas" and isinstance(v, list):
                g[k] = tuple(v)
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict, dict[str, torch.Tensor]]:
    """Python, NumPy and torch (CPU and CUDA) RNG states."""
    py = random.getstate()
    np_state = np.random.get_state()
    meta = {"python": [py[0], list(py[1]), py[2]],
            "numpy": {"name": np_state[0], "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                      "cached_gaussian": float(np_state[4])}}
    tensors = {"rng/torch": torch.get_rng_state(), "rng/numpy_keys": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = s
    return meta, tensors


def set_rng_state(meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n["name"], tensors["rng/numpy_keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(tensors["rng/torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng/cuda"))]
        if states:
            torch.cuda.set_rng_state_all(states)


def write_state(folder: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    (folder / STATE_JSON).write_text(json.dumps(meta, indent=1) + "\n")
    save_file(tensors, str(folder / STATE_TENSORS))


def read_state(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    f = folder / STATE_JSON
    meta = read_json(f, error=CheckpointError, fix="resume from another checkpoint (best or step-N)",
                     missing=f"{f} is missing; resume needs a checkpoint folder written by the Trainer "
                             "(e.g. RUN/checkpoints/last)")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{f} is not a trainer state (a JSON mapping); resume from another checkpoint "
                              "(best or step-N)")
    return meta, load_tensors(folder / STATE_TENSORS)
