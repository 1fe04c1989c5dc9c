"""The CPU recipe shipped in examples/dcgan_cpu.yaml (docs/models/gan.md, "The issue's own protocol") is a valid
run config whose settings reach a real run: trained from the CLI on a small slice of digits, the run folder's config
holds the recipe's model and trainer values."""
import json
from pathlib import Path

import pytest

from genlab.cli import main
from genlab.config import read_config_file

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "dcgan_cpu.yaml"


@pytest.fixture(scope="module")
def recipe():
    return read_config_file(RECIPE)  # the reader behind --config


def test_recipe_is_the_documented_one(recipe):
    assert recipe["trainer"]["max_seconds"] == 1200 and recipe["trainer"]["ema_decay"] == 0.999
    assert recipe["model"]["lr_g"] == recipe["model"]["lr_d"]
    page = (RECIPE.parents[1] / "docs" / "models" / "gan.md").read_text(encoding="utf-8")
    assert "examples/dcgan_cpu.yaml" in page


def test_recipe_trains_from_the_cli(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "dcgan", "--data", "digits", "--config", str(RECIPE), "trainer.max_seconds=null",
                 "trainer.epochs=2", "data.limit=300", "trainer.val_every=1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    rec = json.loads((out / "config.json").read_text())["sections"]
    for section in ("model", "trainer"):
        for key, value in recipe[section].items():
            if key not in ("max_seconds", "epochs", "val_every"):
                assert rec[section][key] == value, (section, key)
    assert (out / "model" / "model.safetensors").is_file()
