"""Contract tests every registered model passes: the checks of :mod:`genlab.testing` (declarations, inference
per declared capability, a step lowers the loss, exact save/load with the class location recorded, seeded runs),
run on each model genlab ships. External packages run the same checks with ``genlab.testing.ModelContractTests``
(tests/models/test_external.py does so for the test package's ``tiny-vae``)."""
import pytest

from genlab import testing
from genlab.registry import list_entries

#: models that need quantised pixels or sequences run the same checks on their own data (tests/models/test_pixelcnn.py)
OWN_DATA = {"pixelcnn", "cpixelcnn", "wavenet"}  # wavenet: sequences (tests/models/test_wavenet.py)
#: image-to-image models need paired data (source, target[, mask]): the same checks in tests/models/test_image2image.py
OWN_DATA |= {"pix2pix", "srgan", "context-encoder", "colorizer"}
MODELS = [e.name for e in list_entries() if e.source == "genlab" and e.name not in OWN_DATA]
KINDS = ["image", "tabular"]
CONFIG = {"latent_dim": 4}
#: smaller networks where the defaults are sized for real training (the checks are the same)
SMALL = {"stylegan": {"width": 16, "w_dim": 16, "mapping_layers": 2}, "progan": {"width": 16}}
SMALL["cstylegan"] = SMALL["stylegan"]  # the conditional variant (issue 17): the same small widths


def _cfg(name: str) -> dict:
    return {**CONFIG, **SMALL.get(name, {})}


def _data(kind, image_data, tabular_data, name):
    data = image_data if kind == "image" else tabular_data.standardized()
    if not testing.accepts(name, data):
        pytest.skip(f"{name} does not take {data.kind} data")
    return data


def test_registry_lists_foundation_models():
    assert {"ae", "vae"} <= set(MODELS)
    for e in list_entries():
        assert e.summary and "\n" not in e.summary


def test_fixtures_are_the_contract_data(image_data, tabular_data):
    """conftest's fixtures are genlab.testing's tiny data sets, so in-tree and external contract runs agree."""
    import torch
    for fixture, made in ((image_data, testing.tiny_image_data()), (tabular_data, testing.tiny_tabular_data())):
        assert torch.equal(fixture.x, made.x) and torch.equal(fixture.y, made.y) and fixture.name == made.name


@pytest.mark.parametrize("name", MODELS)
def test_declarations(name):
    testing.check_declarations(name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_builds_and_inference(name, kind, image_data, tabular_data):
    testing.check_inference(name, _data(kind, image_data, tabular_data, name), _cfg(name))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_one_step_lowers_loss(name, kind, image_data, tabular_data):
    testing.check_one_step_lowers_loss(name, _data(kind, image_data, tabular_data, name), _cfg(name))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_is_exact(name, kind, image_data, tabular_data, tmp_path):
    testing.check_save_load_round_trip(name, _data(kind, image_data, tabular_data, name), tmp_path, _cfg(name))


@pytest.mark.parametrize("name", MODELS)
def test_seeded_runs_are_identical(name, image_data):
    testing.check_seeded_training(name, image_data, _cfg(name))
