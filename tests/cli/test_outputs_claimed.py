"""The app commands never delete or overwrite what the user owns: ``--out`` / ``--save`` / ``--report`` must be new
or empty folders and ``-o`` files of compress / decompress new files, checked before anything is read, trained or
written (``commands._common.claim_outputs``); ``save`` of an estimator or model replaces only an earlier save
(``io.atomic.check_replaceable``); an allocation failure from a hostile size is one line and exit 2."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from genlab.cli import main
from genlab.errors import ConfigError

APP_COMMANDS = ("detect", "denoise", "impute", "augment", "latent-map")


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()



@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d8.npz"
    np.savez(path, x=rng.random((40, 1, 8, 8), dtype=np.float32), y=np.arange(40) % 4)
    return path


@pytest.mark.parametrize("cmd", APP_COMMANDS)
def test_out_into_a_folder_with_user_files_is_refused(cmd, data, tmp_path, error_line):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "scores.csv").write_text("mine\n")
    assert main([cmd, str(data), "-o", str(mine), "--epochs", "1"]) == 2
    assert "already exists and is not empty" in error_line()
    assert [p.name for p in mine.iterdir()] == ["scores.csv"] and (mine / "scores.csv").read_text() == "mine\n"


@pytest.mark.parametrize("cmd", APP_COMMANDS)
def test_save_never_empties_a_folder_or_renames_a_file(cmd, data, tmp_path, error_line):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    assert main([cmd, str(data), "-o", str(tmp_path / "o1"), "--epochs", "1", "--save", str(keep)]) == 2
    assert "--save" in error_line()
    assert (keep / "notes.txt").read_text() == "precious" and not (tmp_path / "o1").exists()
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    assert main([cmd, str(data), "-o", str(tmp_path / "o2"), "--epochs", "1", "--save", str(notes)]) == 2
    assert "is a file" in error_line()
    assert notes.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == [
        "d8.npz", "keep", "notes.txt"]


@pytest.mark.parametrize("cmd", APP_COMMANDS)
def test_out_through_a_file_is_one_line(cmd, data, tmp_path, error_line):
    (tmp_path / "afile").write_text("x")
    assert main([cmd, str(data), "-o", str(tmp_path / "afile" / "sub"), "--epochs", "1"]) == 2
    assert "afile is a file, not a folder" in error_line()
    assert (tmp_path / "afile").read_text() == "x"


def test_out_and_save_may_not_be_one_path(data, tmp_path, error_line):
    assert main(["detect", str(data), "-o", str(tmp_path / "same"), "--save", str(tmp_path / "same")]) == 2
    assert "give each output its own path" in error_line()


def test_an_empty_out_folder_is_used(data, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["latent-map", str(data), "-o", str(out), "--epochs", "1", "--method", "pca"]) == 0
    assert (out / "latent_map.csv").is_file()


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    d = tmp_path_factory.mktemp("glc")
    rng = np.random.default_rng(1)
    np.savez(d / "x.npz", x=rng.random((30, 1, 8, 8), dtype=np.float32))
    assert main(["compress", str(d / "x.npz"), "-o", str(d / "x.glc"), "--epochs", "1", "--rd-epochs", "1"]) == 0
    return d


def test_compress_never_overwrites_a_file_or_a_compressor(compressed, tmp_path, error_line):
    d = compressed
    data = tmp_path / "data.npz"
    data.write_bytes((d / "x.npz").read_bytes())
    before = _digest(data)
    assert main(["compress", str(data), "-o", str(data), "--run", str(d / "x.compressor")]) == 2
    assert "-o" in error_line() and _digest(data) == before
    glc, comp = _digest(d / "x.glc"), _digest(d / "x.compressor" / "estimator.json")
    assert main(["compress", str(d / "x.npz"), "-o", str(d / "x.glc"), "--epochs", "1"]) == 2
    assert "already exists" in error_line()
    assert _digest(d / "x.glc") == glc and _digest(d / "x.compressor" / "estimator.json") == comp
    (tmp_path / "y.compressor").mkdir()
    (tmp_path / "y.compressor" / "mine.txt").write_text("m")
    assert main(["compress", str(d / "x.npz"), "-o", str(tmp_path / "y.glc"), "--epochs", "1"]) == 2
    assert "compressor folder" in error_line() and not (tmp_path / "y.glc").exists()
    (tmp_path / "afile").write_text("x")
    assert main(["compress", str(d / "x.npz"), "-o", str(tmp_path / "r.glc"), "--run", str(d / "x.compressor"),
                 "--report", str(tmp_path / "afile")]) == 2
    assert "--report" in error_line() and not (tmp_path / "r.glc").exists()


def test_decompress_never_overwrites_and_checks_the_reference_first(compressed, tmp_path, error_line):
    d = compressed
    mine = tmp_path / "out.npz"
    mine.write_text("mine")
    assert main(["decompress", str(d / "x.glc"), "-o", str(mine)]) == 2
    assert "already exists" in error_line() and mine.read_text() == "mine"
    ref = tmp_path / "ref.npz"
    np.savez(ref, x=np.zeros((5, 1, 8, 8), np.float32))
    assert main(["decompress", str(d / "x.glc"), "-o", str(tmp_path / "dec.npz"), "--reference", str(ref)]) == 2
    assert "--reference" in error_line() and not (tmp_path / "dec.npz").exists()
    assert main(["decompress", str(d / "x.glc"), "-o", str(tmp_path / "dec.npz"), "--reference",
                 str(d / "x.npz")]) == 0
    assert (tmp_path / "dec.npz").is_file()


def test_estimator_save_replaces_only_an_earlier_save(tmp_path):
    from genlab.apps import AnomalyDetector
    from genlab.io.serialize import save_model

    x = np.random.default_rng(2).normal(size=(60, 4)).astype(np.float32)
    det = AnomalyDetector(model="ae", epochs=1, n_ensemble=1, model_config={"latent_dim": 2}).fit(x)
    det.save(tmp_path / "det")
    det.save(tmp_path / "det")  # an earlier save is replaced as a whole
    assert AnomalyDetector.load(tmp_path / "det").n_ensemble_ == 1
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    (user / "model").mkdir()
    with pytest.raises(ConfigError, match=r"holds files genlab did not write there \(notes.txt\)"):
        det.save(user)
    assert (user / "notes.txt").read_text() == "precious" and not any((user / "model").iterdir())
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder genlab wrote"):
        det.save(tmp_path / "afile")
    with pytest.raises(ConfigError, match="afile is a file, not a folder"):
        det.save(tmp_path / "afile" / "det")
    assert (tmp_path / "afile").read_text() == "x"
    with pytest.raises(ConfigError, match=r"holds files genlab did not write there \(model, ...\)"):
        save_model(det.model_, user)  # a model save writes config.json and model.safetensors, nothing else
    assert (user / "notes.txt").read_text() == "precious"


def test_write_bytes_atomic_through_a_file_is_one_line(tmp_path):
    from genlab.io.atomic import write_bytes_atomic
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"cannot write .*: .*afile is a file, not a folder"):
        write_bytes_atomic(tmp_path / "afile" / "sub" / "f.bin", b"1")


@pytest.mark.parametrize("exc, code", [
    (MemoryError("Unable to allocate 23.3 TiB for an array with shape (100000000000, 64)"), 2),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: 1 bytes"), 2),
])
def test_out_of_memory_is_one_line_exit_2(exc, code, data, tmp_path, monkeypatch, error_line):
    import genlab.commands.detect as detect

    def run(args):
        raise exc
    monkeypatch.setattr(detect, "run", run)
    assert main(["detect", str(data), "-o", str(tmp_path / "o")]) == code
    assert error_line().startswith("genlab: error: out of memory (")


def test_other_runtime_errors_are_not_hidden(data, tmp_path, monkeypatch):
    import genlab.commands.detect as detect

    def run(args):
        raise RuntimeError("a bug")
    monkeypatch.setattr(detect, "run", run)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["detect", str(data), "-o", str(tmp_path / "o")])


def test_augment_run_checks_the_input_and_refuses_fit_options(data, tmp_path, capsys, error_line):
    assert main(["augment", str(data), "-o", str(tmp_path / "a"), "-n", "2", "--epochs", "1",
                 "--save", str(tmp_path / "aug")]) == 0
    capsys.readouterr()
    other = tmp_path / "m28.npz"
    np.savez(other, x=np.zeros((10, 1, 28, 28), np.float32), y=np.arange(10) % 4)
    assert main(["augment", str(other), "-o", str(tmp_path / "b"), "-n", "2", "--include-real", "--format", "npz",
                 "--run", str(tmp_path / "aug")]) == 2
    assert "give data of the fitted shape" in error_line() and not (tmp_path / "b").exists()
    assert main(["augment", str(data), "-o", str(tmp_path / "c"), "-n", "2", "--run", str(tmp_path / "aug"),
                 "--sampling", "prior"]) == 2
    assert "--sampling does not apply" in error_line() and not (tmp_path / "c").exists()


def test_run_refuses_training_options_for_a_model_folder(data, tmp_path, error_line):
    from genlab import train
    run = train("ae", data=str(data), out=tmp_path / "run", config={"trainer": {"epochs": 1}}, figures=False)
    assert main(["detect", str(data), "-o", str(tmp_path / "o"), "--run", str(run.out_dir), "--epochs", "3"]) == 2
    assert "saved model or run folder: nothing is trained" in error_line() and not (tmp_path / "o").exists()


def test_a_save_missing_a_listed_model_folder_is_refused(tmp_path):
    import json
    import shutil

    from genlab.apps import AnomalyDetector
    from genlab.errors import CheckpointError

    x = np.random.default_rng(3).normal(size=(60, 4)).astype(np.float32)
    det = AnomalyDetector(model="ae", epochs=1, n_ensemble=2, model_config={"latent_dim": 2}).fit(x)
    det.save(tmp_path / "det")
    rec = json.loads((tmp_path / "det" / "estimator.json").read_text())
    assert rec["model_folders"] == ["member_1_"]
    np.testing.assert_array_equal(AnomalyDetector.load(tmp_path / "det").score_samples(x), det.score_samples(x))
    shutil.copytree(tmp_path / "det", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "member_1_")
    with pytest.raises(CheckpointError, match="member_1_ is missing but .* lists it: the save is incomplete"):
        AnomalyDetector.load(tmp_path / "cut")
    rec["model_folders"] = ["../elsewhere"]
    (tmp_path / "det" / "estimator.json").write_text(json.dumps(rec))
    with pytest.raises(CheckpointError, match="is corrupt \\(model_folders"):
        AnomalyDetector.load(tmp_path / "det")
    del rec["model_folders"]  # a save written before the key existed loads as before
    (tmp_path / "det" / "estimator.json").write_text(json.dumps(rec))
    assert AnomalyDetector.load(tmp_path / "det").member_1_ is not None
