"""Save/load a model as a folder: ``config.json`` + ``model.safetensors``. No pickle anywhere."""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..config import from_saved, read_json, to_dict
from ..errors import CheckpointError, ConfigWarning, GenlabError
from .atomic import atomic_dir, resolve_dir
from .paths import require_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def model_record(model) -> dict:
    """What ``config.json`` holds: everything needed to rebuild ``model`` without user code: the registered name,
    where its class lives (``"class": "module:QualName"`` and the providing ``"distribution"``, so a process in
    which the name is not registered yet imports that module), the config and the data description. A model
    built with user-supplied networks also lists them (``"user_networks"``): they are rebuilt by the caller,
    ``load(path, networks=...)``.

    Format version 1; ``class``/``distribution``/``user_networks`` are optional keys (files written before
    genlab recorded them load by name)."""
    from ..registry import model_location

    rec = {"format_version": FORMAT_VERSION, "genlab_version": __version__, "model": model.registry_name,
           **model_location(model), "config": to_dict(model.config), "data": model.data_info}
    if model.user_networks:
        rec["user_networks"] = list(model.user_networks)
    return rec


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the state dict (safetensors refuses shared/non-contiguous storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def write_model_files(model, folder: Path) -> None:
    """Write ``config.json`` and ``model.safetensors`` into an existing folder (not atomic by itself)."""
    (folder / CONFIG_NAME).write_text(json.dumps(model_record(model), indent=2) + "\n")
    save_file(state_tensors(model), str(folder / WEIGHTS_NAME), metadata={"genlab_version": __version__})


def save_model(model, path: str | Path) -> Path:
    """Save ``model`` to folder ``path`` atomically (an earlier save there is replaced as a whole; a file or a
    folder holding anything else is refused, :func:`genlab.io.atomic.check_replaceable`)."""
    path = Path(path)
    with atomic_dir(path, owned=(CONFIG_NAME, WEIGHTS_NAME)) as tmp:
        write_model_files(model, tmp)
    log.info("saved %s model to %s", model.registry_name, path)
    return path


def read_record(folder: Path) -> dict:
    """The checked contents of ``folder/config.json``: bounded JSON, model/config keys, format version and a
    valid ``data`` description (shape, classes, normalisation), each problem a one-line CheckpointError."""
    from ..data.dataset import check_data_info

    cfg = folder / CONFIG_NAME
    fix = "the save is corrupt, re-save or re-train the model"
    rec = read_json(cfg, error=CheckpointError, fix=fix,
                    missing=f"{cfg} is missing; point at a folder written by genlab (config.json + "
                            f"model.safetensors) or a run folder")
    if not isinstance(rec, dict) or "model" not in rec or "config" not in rec:
        raise CheckpointError(f"{cfg} is not a genlab model config (no 'model'/'config' keys); "
                              "point at a genlab model folder")
    fv = rec.get("format_version")
    if fv != FORMAT_VERSION:
        shown = fv if isinstance(fv, int) and abs(fv) < 10 ** 9 else repr(str(fv)[:20])
        raise CheckpointError(f"{cfg} has format_version {shown} (written by genlab "
                              f"{str(rec.get('genlab_version', '?'))[:20]}); this genlab {__version__} reads version "
                              f"{FORMAT_VERSION}: install the matching genlab or re-train")
    if not isinstance(rec["model"], str):
        raise CheckpointError(f"{cfg}: 'model' must be a model name, got {str(rec['model'])[:40]!r}; {fix}")
    if "data" not in rec:
        raise CheckpointError(f"{cfg} has no 'data' section (shape and normalisation of the training data); {fix}")
    try:
        check_data_info(rec["data"], str(cfg))
    except GenlabError as e:
        raise CheckpointError(str(e)) from None
    return rec


def build_from_record(rec: dict, where: str = "config", *, networks: dict | None = None):
    """Build the model ``rec`` (a :func:`read_record` result) describes, with fresh weights.

    The class is the registered one, or imported from the recorded ``"class"`` (see
    :func:`genlab.registry.entry_for_record`). A model trained with user-supplied networks needs them again
    (``networks``, built as for training); genlab cannot rebuild them from JSON."""
    from ..registry import entry_for_record

    entry = entry_for_record(rec["model"], rec, where=where)
    user = rec.get("user_networks")
    if user and networks is None:
        names = ", ".join(str(n)[:40] for n in user) if isinstance(user, list) else "?"
        raise CheckpointError(f"{where}: this {rec['model']} was trained with user-supplied networks ({names}) that "
                              "genlab cannot rebuild from JSON; load it in Python with genlab.load(path, "
                              "networks={...}) built as for training, or subclass the model and override "
                              "build_networks (docs/models/adding.md)")
    cfg = from_saved(entry.config_cls, rec["config"], where=where)
    with warnings.catch_warnings():  # advice on the config was given when it was trained
        warnings.simplefilter("ignore", ConfigWarning)
        return entry.build(cfg, rec["data"], networks)


def find_model_dir(path: str | Path) -> Path:
    """Accept a model folder, or a run folder holding ``model/``."""
    path = resolve_dir(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run folder or a saved model folder")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a folder; give a run folder or a saved model folder (the folder "
                              "that holds config.json and model.safetensors)")
    if (path / "model").is_dir() and not (path / WEIGHTS_NAME).exists():
        return resolve_dir(path / "model")
    return path


def load_tensors(file: Path) -> dict[str, torch.Tensor]:
    file = require_file(file, CheckpointError,
                        f"{file} is missing; the save is incomplete, re-save or re-train the model")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{file} is corrupt or truncated ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                              "re-save or re-train the model") from None


def load_state_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], file: Path) -> None:
    """Load ``tensors`` into ``module`` after checking names, shapes, dtypes (those of the freshly built
    module) and that floating-point tensors are finite; each mismatch is a one-line CheckpointError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise CheckpointError(f"{file} does not match its config.json ({what}); the files come from "
                              "different models, re-save the model")
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{file}: tensor {k!r} has shape {tuple(v.shape)} but the config builds "
                                  f"{tuple(own[k].shape)}; the files come from different models")
        if own[k].dtype != v.dtype:
            raise CheckpointError(f"{file}: tensor {k!r} is {str(v.dtype).removeprefix('torch.')} but the model "
                                  f"uses {str(own[k].dtype).removeprefix('torch.')} (the file was converted or "
                                  "edited); re-save the model from its run, or re-train it")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{file}: tensor {k!r} holds NaN or infinite values (training diverged or the "
                                  "file is damaged); re-train, or load the last good checkpoint "
                                  "(RUN/checkpoints/best or an earlier step-N)")
    module.load_state_dict(tensors)


def load(path: str | Path, *, device: str | torch.device = "cpu", networks: dict | None = None):
    """Rebuild a saved model from its folder (or a run folder) and put it in eval mode on ``device``.

    Parameters
    ----------
    path : path
        A model folder (``config.json`` + ``model.safetensors``) or a run folder holding ``model/``.
    device : str or torch.device
        Where to put the model.
    networks : dict of nn.Module, optional
        For a model trained with user-supplied networks (``genlab.train(..., networks=...)``): fresh instances of
        the same networks, which receive the saved weights. Models of external packages need no argument: the
        module recorded in ``config.json`` is imported when the name is not registered.
    """
    folder = find_model_dir(path)
    rec = read_record(folder)
    try:
        model = build_from_record(rec, where=str(folder / CONFIG_NAME), networks=networks)
    except CheckpointError:
        raise
    except GenlabError as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: {e}") from None
    load_state_into(model, load_tensors(folder / WEIGHTS_NAME), folder / WEIGHTS_NAME)
    return model.to(device).eval()
