"""``log_likelihood(x, k=None, labels=None)``: ``k`` is checked by every model that has one (an integer >= 1; exact
models also take None and do not use it), so labels given by position (``log_likelihood(x, y)``) are refused
with a hint to pass them by keyword instead of being taken for ``k`` and dropped (a cpixelcnn then returned the
label-marginal log p(x) in place of log p(x | y))."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab import testing
from genlab.data import TensorDataset
from genlab.errors import ConfigError
from tests.models.test_wavenet import SMALL, seq_data

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

IMAGES = testing.tiny_image_data()
BYTES = TensorDataset((IMAGES.x * 255).round() / 255, IMAGES.y, name="tiny-bytes")  # levels k / 255 (pixelcnn)
CASES = [("vae", IMAGES, {"latent_dim": 2}), ("cvae", IMAGES, {"latent_dim": 2}), ("pixelcnn", BYTES, {}),
         ("cpixelcnn", BYTES, {}), ("wavenet", seq_data(8), SMALL)]


def _model(name, data, cfg):
    torch.manual_seed(0)
    return testing.build(name, data, cfg).eval()


@pytest.mark.parametrize("name,data,cfg", CASES, ids=[c[0] for c in CASES])
def test_labels_by_position_are_refused(name, data, cfg):
    m = _model(name, data, cfg)
    x, y = data.x[:4], data.y[:4]
    with pytest.raises(ConfigError, match=rf"^{name}\.log_likelihood: k \(importance samples\) got a tensor; pass the "
                                          r"labels by keyword: log_likelihood\(x, labels=y\)$"):
        m.log_likelihood(x, y)


@pytest.mark.parametrize("name,data,cfg", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("k", [0, -3, 2.5, True, "10"])
def test_k_must_be_a_positive_integer(name, data, cfg, k):
    m = _model(name, data, cfg)
    with pytest.raises(ConfigError, match=r"k \(importance samples\) must be an integer >= 1"):
        m.log_likelihood(data.x[:2], k)


def test_exact_models_ignore_k_and_the_bound_takes_numpy_integers():
    pix = _model("cpixelcnn", BYTES, {})
    x, y = BYTES.x[:4], BYTES.y[:4]
    given = pix.log_likelihood(x, labels=y)
    assert torch.equal(pix.log_likelihood(x, None, labels=y), given)
    assert torch.equal(pix.log_likelihood(x, 7, labels=y), given)  # exact: k is not used
    assert not torch.allclose(pix.log_likelihood(x), given)  # the label-marginal log p(x) differs
    vae = _model("vae", IMAGES, {"latent_dim": 2})
    x = IMAGES.x[:4]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(vae.log_likelihood(x, np.int64(5), generator=g()), vae.log_likelihood(x, 5, generator=g()))
