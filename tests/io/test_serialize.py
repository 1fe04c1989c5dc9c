"""Saved-model folders: round trip, and every way a folder can be broken gives a one-line CheckpointError."""
import json

import pytest
import torch

import genlab
from genlab.config import from_dict
from genlab.errors import CheckpointError
from genlab.io.atomic import atomic_dir, resolve_dir, write_bytes_atomic
from genlab.models.vae import VAE, VAEConfig


@pytest.fixture
def saved(image_data, tmp_path):
    model = VAE(from_dict(VAEConfig, {"latent_dim": 3}), image_data.info())
    genlab.save_model(model, tmp_path / "m")
    return tmp_path / "m", model


def one_line(exc):
    return "\n" not in str(exc.value)


def test_missing_weights(saved):
    path, _ = saved
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing") as e:
        genlab.load(path)
    assert one_line(e)


def test_missing_config(saved):
    path, _ = saved
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing") as e:
        genlab.load(path)
    assert one_line(e)


def test_truncated_weights(saved):
    path, _ = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as e:
        genlab.load(path)
    assert one_line(e)


def test_corrupt_config_json(saved):
    path, _ = saved
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        genlab.load(path)


def test_incompatible_version(saved):
    path, _ = saved
    rec = json.loads((path / "config.json").read_text())
    rec["format_version"] = 99
    (path / "config.json").write_text(json.dumps(rec))
    with pytest.raises(CheckpointError, match="format_version 99") as e:
        genlab.load(path)
    assert one_line(e)


def test_unknown_model_name_and_bad_config_key(saved):
    path, _ = saved
    rec = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**rec, "model": "nope"}))
    with pytest.raises(CheckpointError, match="unknown model 'nope'"):
        genlab.load(path)
    (path / "config.json").write_text(json.dumps({**rec, "config": {**rec["config"], "bogus": 1}}))
    with pytest.raises(CheckpointError, match="unknown key 'bogus'"):
        genlab.load(path)


def test_weights_from_another_model(saved, image_data, tmp_path):
    path, _ = saved
    other = VAE(from_dict(VAEConfig, {"latent_dim": 5}), image_data.info())
    genlab.save_model(other, tmp_path / "o")
    (path / "model.safetensors").write_bytes((tmp_path / "o" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="different models"):
        genlab.load(path)


def test_no_pickle_in_saved_folder(saved):
    path, model = saved
    blob = (path / "model.safetensors").read_bytes()
    assert not blob.startswith(b"\x80")  # pickle protocol marker
    loaded = genlab.load(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_atomic_dir_failure_keeps_old_version(tmp_path):
    target = tmp_path / "ck"
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "a.txt").write_text("v2-partial")
            raise RuntimeError("crash while writing")
    assert (target / "a.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_resolve_dir_falls_back_to_old_after_crash_between_renames(tmp_path):
    old = tmp_path / "ck.old"
    old.mkdir()
    assert resolve_dir(tmp_path / "ck") == old


def test_write_bytes_atomic_leaves_nothing_on_error(tmp_path, monkeypatch):
    import os
    write_bytes_atomic(tmp_path / "f.bin", b"old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "f.bin", b"new")
    assert (tmp_path / "f.bin").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
