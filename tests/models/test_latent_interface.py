"""One latent interface: ``encode(x, labels=None)`` returns a ``(B, latent_dim)`` tensor for every registered model
with an encoder; the VAE family's distribution is ``posterior(x, labels=None) -> (mu, logvar)``."""
import pytest
import torch

from genlab.config import from_dict
from genlab.errors import ConfigError
from genlab.models import capabilities, models_with
from genlab.registry import get_model_entry

ENCODERS = models_with("has_encoder")
LIKELIHOOD = models_with("has_likelihood", "has_encoder")  # latent-variable likelihoods (pixelcnn: none)


def _build(name, image_data, tabular_data):
    entry = get_model_entry(name)
    data = image_data if "image" in entry.cls.input_kinds else tabular_data.standardized()
    torch.manual_seed(0)
    return entry.cls(from_dict(entry.config_cls, {"latent_dim": 3}), data.info()).eval(), data


def test_the_encoders_are_declared():
    assert {"ae", "sparse-ae", "denoising-ae", "contractive-ae", "vae", "cvae"} <= set(ENCODERS)
    assert {"vae", "cvae"} <= set(LIKELIHOOD) <= set(ENCODERS)
    assert not {"gan", "dcgan", "cgan"} & set(ENCODERS)


@pytest.mark.parametrize("name", ENCODERS)
def test_encode_returns_one_code_tensor(name, image_data, tabular_data):
    model, data = _build(name, image_data, tabular_data)
    x = data.x[:5]
    labels = data.y[:5] if capabilities(model)["conditional"] else None
    with torch.no_grad():
        z = model.encode(x, labels)
        z_kw = model.encode(x, labels=labels)
    assert isinstance(z, torch.Tensor) and z.shape == (5, model.latent_dim) and torch.isfinite(z).all()
    torch.testing.assert_close(z, z_kw, rtol=0, atol=0)
    with torch.no_grad():  # a code does not depend on the rest of the batch
        torch.testing.assert_close(model.encode(x[:2], None if labels is None else labels[:2]), z[:2])


@pytest.mark.parametrize("name", models_with("has_encoder", forbid=("conditional",)))
def test_unconditional_encoders_refuse_labels(name, image_data, tabular_data):
    model, data = _build(name, image_data, tabular_data)
    with pytest.raises(ConfigError, match="unconditional") as e:
        model.encode(data.x[:2], torch.zeros(2, dtype=torch.long))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", LIKELIHOOD)
def test_encode_is_the_posterior_mean(name, image_data, tabular_data):
    model, data = _build(name, image_data, tabular_data)
    x = data.x[:6]
    labels = data.y[:6] if model.conditional else None
    with torch.no_grad():
        mu, logvar = model.posterior(x, labels)
        z = model.encode(x, labels)
    assert mu.shape == logvar.shape == (6, model.latent_dim)
    torch.testing.assert_close(z, mu, rtol=0, atol=0)
    # the same numbers the encoder network emits: the first L outputs are mu, the next L log-variances
    with torch.no_grad():
        h = model.encoder(x) if not model.conditional else model.encoder(x, model._onehot(labels, x))
    torch.testing.assert_close(mu, h[:, :model.latent_dim], rtol=0, atol=0)
    torch.testing.assert_close(logvar, h[:, model.latent_dim:].clamp(-30, 20), rtol=0, atol=0)


def test_cvae_encodes_with_the_inferred_label_without_labels(image_data):
    model, data = _build("cvae", image_data, image_data)
    x = data.x[:8]
    with torch.no_grad():
        y = model.infer_labels(x)
        torch.testing.assert_close(model.encode(x), model.encode(x, y), rtol=0, atol=0)
        torch.testing.assert_close(model.posterior(x)[1], model.posterior(x, y)[1], rtol=0, atol=0)
