"""Hostile inputs to the readers genlab trusts least: run configs, saved-model folders, resume state and
image grids. Each case is a one-line GenlabError naming the problem and the fix, found before any large
allocation."""
import json
import math
from dataclasses import dataclass, field

import pytest
import torch
from safetensors.torch import load_file, save_file

import genlab
from genlab.config import ALLOW_INF, apply_overrides, from_dict, parse_value, read_config_file, read_json
from genlab.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.io import serialize
from genlab.io.images import make_grid, save_grid
from genlab.models.common import NetConfig
from genlab.models.vae import VAE, VAEConfig
from genlab.training.config import TrainerConfig
from genlab.training.state import read_state


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg.strip(), msg
    assert isinstance(exc_info.value, GenlabError)
    return msg


# ---------------------------------------------------------------------------- config files
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{','.join(['*' + p] * 10)}]" for p, c in zip("abcdef", "bcdefg")]) + "\n"


def test_binary_config_file(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError) as e:
        read_config_file(f)
    assert "not UTF-8 text" in one_line(e)


def test_billion_laughs_refused_before_expansion(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text(BILLION_LAUGHS)
    assert f.stat().st_size < 400  # ~351 bytes expanding to 10**7 strings
    with pytest.raises(ConfigError) as e:
        read_config_file(f)
    msg = one_line(e)
    assert "expands to more than" in msg and "100,000" in msg
    f.write_text("base: &b {latent_dim: 4}\nmodel: *b\n")  # ordinary aliases still work
    assert read_config_file(f)["model"] == {"latent_dim": 4}


def test_recursive_yaml_alias(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("model: &a {sub: *a}\n")
    with pytest.raises(ConfigError) as e:
        read_config_file(f)
    assert "recursive" in one_line(e)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deeply_nested_config(tmp_path, suffix):
    f = tmp_path / f"run{suffix}"
    f.write_text('{"model": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(ConfigError) as e:
        read_config_file(f)
    assert "nested more than 100 levels" in one_line(e)
    f.write_text(json.dumps({"data": {"name": "[" * 500 + '"{'}}))  # brackets inside strings are no nesting
    assert read_config_file(f)["data"]["name"].startswith("[[[")


def test_yaml_values_without_json_meaning(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("trainer: {seed: 2024-01-01}\n")
    with pytest.raises(ConfigError) as e:
        read_config_file(f)
    assert "trainer.seed" in one_line(e) and "quote it" in str(e.value)
    f.write_text("model: {1: 2}\n")
    with pytest.raises(ConfigError) as e:
        read_config_file(f)
    assert "not a string" in one_line(e)


def test_config_path_is_a_folder(tmp_path):
    (tmp_path / "run.yaml").mkdir()
    with pytest.raises(ConfigError) as e:
        read_config_file(tmp_path / "run.yaml")
    assert "is a folder, not a file" in one_line(e)


def test_deep_override_value():
    with pytest.raises(ConfigError) as e:
        parse_value("[" * 100_000)
    assert "nested more than 100" in one_line(e)
    assert parse_value("[1, 2]") == [1, 2] and parse_value("a: b: c") == "a: b: c"


# ---------------------------------------------------------------------------- config values
@pytest.mark.parametrize("text", ["inf", "-inf", ".inf", "nan", ".nan", "1e400"])
def test_non_finite_float_refused(text):
    data = apply_overrides({}, [f"model.lr={text}"])
    with pytest.raises(ConfigError) as e:
        from_dict(VAEConfig, data["model"], "model")
    assert "model.lr: must be a finite number" in one_line(e)


def test_non_finite_optional_float_and_json_nan():
    with pytest.raises(ConfigError) as e:
        from_dict(TrainerConfig, {"grad_clip": math.inf}, "trainer")
    assert "trainer.grad_clip: must be a finite number" in one_line(e)
    with pytest.raises(ConfigError) as e:
        from_dict(VAEConfig, json.loads('{"weight_decay": NaN}'), "model")
    assert "must be a finite number" in one_line(e)
    with pytest.raises(ConfigError) as e:  # an int too large for a float
        from_dict(NetConfig, {"lr": 10 ** 400}, "model")
    assert "must be a finite number" in one_line(e)


def test_huge_int_refused():
    with pytest.raises(ConfigError) as e:
        from_dict(VAEConfig, {"latent_dim": 10 ** 30}, "model")
    assert "too large" in one_line(e)


def test_field_may_allow_inf():
    @dataclass
    class Cfg:
        limit: float = field(default=math.inf, metadata={ALLOW_INF: True})
        lr: float = 0.1

    assert from_dict(Cfg, {"limit": math.inf}).limit == math.inf
    with pytest.raises(ConfigError):
        from_dict(Cfg, {"limit": math.nan})
    with pytest.raises(ConfigError):
        from_dict(Cfg, {"lr": math.inf})


# ---------------------------------------------------------------------------- saved models
@pytest.fixture
def saved(image_data, tmp_path):
    model = VAE(from_dict(VAEConfig, {"latent_dim": 3}), image_data.info())
    genlab.save_model(model, tmp_path / "m")
    return tmp_path / "m"


@pytest.fixture
def no_build(monkeypatch):
    """Fail loudly (not by allocating) if a bad record reaches the model constructor."""
    def build(*a, **k):
        raise AssertionError("the record reached build_from_record without validation")
    monkeypatch.setattr(serialize, "build_from_record", build)


def edit_config(path, fn):
    rec = json.loads((path / "config.json").read_text())
    fn(rec)
    (path / "config.json").write_text(json.dumps(rec))


def test_huge_recorded_shape_refused_before_building(saved, no_build):
    edit_config(saved, lambda r: r["data"].update(shape=[1, 100000, 100000]))
    with pytest.raises(CheckpointError) as e:
        genlab.load(saved)
    msg = one_line(e)
    assert "data.shape" in msg and "4,194,304" in msg


@pytest.mark.parametrize("edit, words", [
    (lambda r: r["data"].update(shape="abc"), "data.shape must be a list of 1 to 3 positive integers"),
    (lambda r: r["data"].update(shape=[1, 0, 8]), "data.shape must be a list of 1 to 3 positive integers"),
    (lambda r: r["data"].update(shape=[1, 2, 3, 4]), "data.shape must be a list of 1 to 3 positive integers"),
    (lambda r: r.pop("data"), "no 'data' section"),
    (lambda r: r["data"].update(norm={"shift": "x", "scale": 255.0}), "norm.shift must be a number"),
    (lambda r: r["data"].update(norm={"shift": 0.0, "scale": [1.0, 2.0]}), "norm.scale has 2 values"),
    (lambda r: r["data"].pop("norm"), "no data.norm"),
    (lambda r: r["data"].update(num_classes=-3), "data.num_classes must be null or an integer"),
    (lambda r: r["data"].update(num_classes=10 ** 9), "data.num_classes must be null or an integer"),
    (lambda r: r["data"].update(kind="video"), "data.kind must be"),
])
def test_bad_data_section(saved, no_build, edit, words):
    edit_config(saved, edit)
    with pytest.raises(CheckpointError) as e:
        genlab.load(saved)
    assert words in one_line(e)


def test_binary_deep_truncated_or_empty_config_json(saved):
    (saved / "config.json").write_bytes(b"\xff\xfe\x00binary" * 10)
    with pytest.raises(CheckpointError) as e:
        genlab.load(saved)
    assert "not UTF-8" in one_line(e)
    (saved / "config.json").write_text('{"model": "vae", "config": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(CheckpointError) as e:
        genlab.load(saved)
    assert "nested more than 100" in one_line(e)
    for text in ('{"model": "vae", "config": {', "{}", "[]", ""):
        (saved / "config.json").write_text(text)
        with pytest.raises(CheckpointError) as e:
            genlab.load(saved)
        one_line(e)


def test_config_json_is_a_folder(saved):
    (saved / "config.json").unlink()
    (saved / "config.json").mkdir()
    with pytest.raises(CheckpointError) as e:
        genlab.load(saved)
    assert "is a folder, not a file" in one_line(e)


def test_weights_file_is_a_folder(saved):
    (saved / "model.safetensors").unlink()
    (saved / "model.safetensors").mkdir()
    with pytest.raises(CheckpointError) as e:
        genlab.load(saved)
    assert "is a folder, not a file" in one_line(e)


def _load_tampered(saved, change) -> str:
    """Replace the first float tensor of ``model.safetensors`` by ``change(tensor)``; the one-line load error."""
    tensors = load_file(str(saved / "model.safetensors"))
    key = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[key] = change(tensors[key].clone())
    save_file(tensors, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        genlab.load(saved)
    return one_line(e)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_refused(saved, value):
    def poison(t):
        t.view(-1)[0] = value
        return t

    msg = _load_tampered(saved, poison)
    assert "model.safetensors" in msg and "NaN or infinite" in msg and "re-train" in msg


def test_wrong_dtype_weights_refused(saved):
    assert isinstance(genlab.load(saved), VAE)  # untouched, the folder loads
    msg = _load_tampered(saved, lambda t: t.to(torch.int8))
    assert "int8" in msg and "float32" in msg and "model.safetensors" in msg


def test_deep_trainer_state_json(tmp_path):
    (tmp_path / "trainer_state.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CheckpointError) as e:
        read_state(tmp_path)
    assert "trainer_state.json" in one_line(e) and "nested more than 100" in str(e.value)
    (tmp_path / "trainer_state.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError) as e:
        read_state(tmp_path)
    assert "not a trainer state" in one_line(e)


def test_read_json_error_class(tmp_path):
    f = tmp_path / "estimator.json"
    f.write_text('{"a": ' * 150 + "1" + "}" * 150)
    with pytest.raises(DataError) as e:
        read_json(f, error=DataError, fix="re-fit the estimator")
    assert one_line(e).endswith("re-fit the estimator")


# ---------------------------------------------------------------------------- image grids
@pytest.mark.parametrize("nrow", [None, 0, 1, 3, 100])
def test_grid_any_count_and_none(nrow, tmp_path):
    for n in (1, 2, 3, 5, 7):
        grid = make_grid(torch.rand(n, 3, 8, 8), nrow=nrow)
        assert grid.ndim == 3 and grid.shape[2] == 3 and grid.dtype.name == "uint8"
    assert save_grid(torch.rand(1, 1, 8, 8), tmp_path / "g.png", nrow=1).stat().st_size > 0
    with pytest.raises(DataError) as e:  # what a 1-sample or 3-image data set's empty test split gives
        make_grid(torch.rand(0, 1, 8, 8), nrow=nrow)
    assert "0 samples" in one_line(e)
    with pytest.raises(DataError) as e:
        save_grid(torch.cat([torch.rand(0, 1, 8, 8)] * 2), tmp_path / "r.png", nrow=0)
    one_line(e)


def test_grid_too_large_refused():
    with pytest.raises(DataError) as e:
        make_grid(torch.zeros(1, 3, 8, 8).expand(200_000, 3, 8, 8))
    assert "put fewer or smaller images" in one_line(e)


def test_duplicate_keys_are_refused_in_yaml_and_json(tmp_path):
    """YAML's and json's loaders keep the last of two equal keys silently (a config's first trainer section was
    dropped without a word); one line names the key, and YAML merge keys may still be overridden."""
    (tmp_path / "d.yaml").write_text("trainer:\n  epochs: 1\ntrainer:\n  epochs: 5\n")
    (tmp_path / "d.json").write_text('{"trainer": {"epochs": 1, "epochs": 3}}')
    (tmp_path / "m.yaml").write_text("base: &b\n  epochs: 1\ntrainer:\n  <<: *b\n  epochs: 2\n")
    with pytest.raises(ConfigError, match=r"is refused: key 'trainer' appears twice in one mapping \(line 3\); "
                                          r"keep one$"):
        read_config_file(tmp_path / "d.yaml")
    with pytest.raises(ConfigError, match=r"key 'epochs' appears twice in one object; keep one$"):
        read_config_file(tmp_path / "d.json")
    assert read_config_file(tmp_path / "m.yaml")["trainer"] == {"epochs": 2}
