"""The CPU recipes shipped in examples/ (dcgan_cpu.yaml: docs/models/gan.md, "The issue's own protocol";
stylegan_cpu.yaml: docs/models/stylegan.md, "Smaller batches"; dcgan_few_images.yaml: docs/models/gan.md, "A recipe
for few images") are valid run configs whose settings reach a
real run: trained from the CLI on a small slice of digits, the run folder's config holds the recipe's model and
trainer values."""
import json
from pathlib import Path

import pytest

from genlab.cli import main
from genlab.config import read_config_file

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {"dcgan": ROOT / "examples" / "dcgan_cpu.yaml", "stylegan": ROOT / "examples" / "stylegan_cpu.yaml",
           "dcgan-few": ROOT / "examples" / "dcgan_few_images.yaml"}
MODEL_OF = {"dcgan": "dcgan", "stylegan": "stylegan", "dcgan-few": "dcgan"}  # the model each recipe is for


def test_recipe_is_the_documented_one():
    recipe = read_config_file(RECIPES["dcgan"])  # the reader behind --config
    assert recipe["trainer"]["max_seconds"] == 1200 and recipe["trainer"]["ema_decay"] == 0.999
    assert recipe["model"]["lr_g"] == recipe["model"]["lr_d"]
    page = (ROOT / "docs" / "models" / "gan.md").read_text(encoding="utf-8")
    assert "examples/dcgan_cpu.yaml" in page


def test_stylegan_recipe_is_the_documented_one():
    recipe = read_config_file(RECIPES["stylegan"])
    assert recipe["model"] == {"architecture": "orig", "upsample": "nearest", "pixel_norm": True, "mixing_prob": 0.0}
    assert recipe["trainer"]["max_seconds"] == 1200 and recipe["trainer"]["batch_size"] == 16
    assert recipe["trainer"]["ema_decay"] == 0.999
    page = (ROOT / "docs" / "models" / "stylegan.md").read_text(encoding="utf-8")
    assert "examples/stylegan_cpu.yaml" in page


def test_few_images_recipe_is_the_documented_one():
    recipe = read_config_file(RECIPES["dcgan-few"])
    assert recipe["model"] == {"r1_gamma": 0.0, "diffaugment": "translation"}
    assert recipe["trainer"]["max_seconds"] == 300 and recipe["trainer"]["batch_size"] == 64
    assert recipe["trainer"]["ema_decay"] == 0.999 and recipe["trainer"]["ema_rampup"] == 0.05
    page = (ROOT / "docs" / "models" / "gan.md").read_text(encoding="utf-8")
    assert "examples/dcgan_few_images.yaml" in page


@pytest.mark.parametrize("recipe_name", sorted(RECIPES))
def test_recipe_trains_from_the_cli(recipe_name, tmp_path, capsys):
    path, model = RECIPES[recipe_name], MODEL_OF[recipe_name]
    recipe = read_config_file(path)
    out = tmp_path / "run"
    code = main(["train", model, "--data", "digits", "--config", str(path), "trainer.max_seconds=null",
                 "trainer.epochs=2", "data.limit=300", "trainer.val_every=1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    rec = json.loads((out / "config.json").read_text())["sections"]
    for section in ("model", "trainer"):
        for key, value in recipe[section].items():
            if key not in ("max_seconds", "epochs", "val_every"):
                assert rec[section][key] == value, (section, key)
    assert (out / "model" / "model.safetensors").is_file()
