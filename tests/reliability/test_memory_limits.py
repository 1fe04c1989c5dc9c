"""Model sizes too large for memory are one error line that names them, wherever a model is built: training, loading
a saved record, an estimator's model_config (the Imputer's half-masked copies: tests/apps/test_impute.py); and a
finished run whose model file is damaged is reported as damaged, not first as finished."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

import genlab
from genlab.errors import CheckpointError, ConfigError
from genlab.io.memory import allocation_failure, is_out_of_memory, refuse_out_of_memory

TINY = {"model": {"arch": "mlp", "hidden": [16], "latent_dim": 2},
        "trainer": {"epochs": 1, "batch_size": 64, "precision": "fp32", "fid_samples": 0}, "data": {"limit": 200},
        "test": {"enabled": False}}

# 12.8 TB of weights: far beyond any machine the tests run on, refused by the allocator at once
HUGE = 10**11


def test_refuse_out_of_memory_names_what_and_how_much():
    torch_msg = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 12800000000000 bytes. Error code 12 (Cannot allocate memory)")
    with pytest.raises(ConfigError, match=r"^the thing does not fit in memory \(tried to allocate 11,920\.9 GiB\); "
                                          r"lower it$"):
        with refuse_out_of_memory("the thing", "lower it"):
            raise RuntimeError(torch_msg)
    assert allocation_failure(MemoryError("Unable to allocate 3 TiB")) == "Unable to allocate 3 TiB"
    assert is_out_of_memory(MemoryError()) and not is_out_of_memory(RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):  # other errors pass unchanged
        with refuse_out_of_memory("the thing", "lower it"):
            raise RuntimeError("a bug")


def test_training_a_model_too_large_is_one_line_naming_the_size(tmp_path):
    cfg = json.loads(json.dumps(TINY))
    cfg["model"]["latent_dim"] = HUGE
    with pytest.raises(ConfigError, match=rf"model 'ae' with .*model\.latent_dim={HUGE}.* does not fit in memory "
                                          r"\(tried to allocate [\d,.]+ GiB\); lower the model's sizes"):
        genlab.train("ae", "digits", config=cfg, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written


def test_loading_a_record_with_a_hostile_size_is_one_line(tmp_path):
    genlab.train("ae", "digits", config=TINY, out=tmp_path / "run", figures=False)
    record = tmp_path / "run" / "model" / "config.json"
    rec = json.loads(record.read_text())
    rec["config"]["hidden"] = [HUGE]
    record.write_text(json.dumps(rec))
    with pytest.raises(CheckpointError, match=rf"config\.json: model 'ae' with .*model\.hidden=\[{HUGE}\].* does not "
                                              "fit in memory"):
        genlab.load(tmp_path / "run")


def test_estimator_model_config_too_large_is_one_line():
    from genlab.apps import AnomalyDetector
    x = np.random.default_rng(0).random((40, 5)).astype(np.float32)
    with pytest.raises(ConfigError, match=rf"model\.hidden=\[{HUGE}\].* does not fit in memory"):
        AnomalyDetector(model_config={"hidden": [HUGE]}, epochs=1).fit(x)


def test_resuming_a_finished_run_with_a_damaged_model_reports_the_damage_only(tmp_path, caplog):
    genlab.train("ae", "digits", config=TINY, out=tmp_path / "run")  # with its final outputs: finished
    again = genlab.train(resume=tmp_path / "run", figures=False)
    assert again.result is None  # intact: finished, nothing to do
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "run", damaged)
    weights = damaged / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genlab.runs"):
        with pytest.raises(CheckpointError, match="model.safetensors is corrupt or truncated"):
            genlab.train(resume=damaged, figures=False)
    assert not [r for r in caplog.records if "already finished" in r.getMessage()]
