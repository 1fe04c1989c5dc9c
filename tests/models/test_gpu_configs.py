"""The GPU configurations documented for 64x64 and 128x128 image folders (docs/models/progan.md and stylegan.md)
read through the --config reader, validate as run configs and build their model on data of that size (no
training: no GPU is needed to check that a user can start from them)."""
import pytest

SHAPES = {
    "progan": lambda m, side: m.sides == [4 * 2 ** k for k in range(side.bit_length() - 2)],
    "stylegan": lambda m, side: m.side == side and m.num_ws == 2 * side.bit_length() - 4,
}


@pytest.mark.parametrize("model", list(SHAPES))
def test_gpu_configs_parse_and_build(gpu_config_models, model):
    built = gpu_config_models(model)
    assert [b[0] for b in built] == [f"{model}-64", f"{model}-128"]
    for name, side, spec, m in built:
        assert spec.trainer.device == "cuda" and spec.model_config["width"] == 512
        assert m.shape == (3, side, side) and SHAPES[model](m, side), name
