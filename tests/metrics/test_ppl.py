"""Perceptual path length on a linear decoder, where it has a closed form."""
import numpy as np
import pytest
import torch
from torch import nn

from genlab.errors import ConfigError, DataError
from genlab.metrics import perceptual_path_length
from genlab.models import GenerativeModel


class LinearDecoder(GenerativeModel):
    """A genlab model that declares a decoder: latent_dim, decode(z, labels=None) -> (N, C, H, W)."""

    has_decoder = True

    def __init__(self, weight: torch.Tensor):
        super().__init__(None, {"kind": "tabular", "shape": (6,)})
        self.latent_dim = weight.shape[1]
        self.weight = nn.Parameter(weight)
        self.seen_labels = []

    def decode(self, z, labels=None):
        if labels is not None:
            self.seen_labels.append(labels.clone())
        return (z @ self.weight.T).view(z.shape[0], 1, 2, 3)

    def sample(self, n, *, labels=None, generator=None):
        return self.decode(torch.randn(n, self.latent_dim, generator=generator, dtype=self.weight.dtype), labels)


def flatten(x):
    return x.flatten(1)


def _draws(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    t = torch.rand(n, 1, generator=g, dtype=torch.float64)
    return z0, z1, t


def _filtered_mean(d):
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    return d[(d >= lo) & (d <= hi)].mean()


@pytest.fixture
def model():
    return LinearDecoder(torch.randn(6, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64))


def test_lerp_closed_form(model):
    n, seed = 1000, 3
    value, dists = perceptual_path_length(model, flatten, n=n, seed=seed, batch_size=128, return_distances=True)
    z0, z1, _ = _draws(n, 4, seed)
    exact = ((z1 - z0) @ model.weight.detach().T).pow(2).sum(1).numpy()  # ||W (z1 - z0)||^2
    np.testing.assert_allclose(dists, exact, rtol=1e-6)
    assert value == pytest.approx(_filtered_mean(exact), rel=1e-6)
    assert value != pytest.approx(exact.mean(), rel=1e-6)  # the 1%/99% filter changed the number


def test_batch_size_does_not_change_result(model):
    a = perceptual_path_length(model, flatten, n=50, seed=1, batch_size=7)
    b = perceptual_path_length(model, flatten, n=50, seed=1, batch_size=50)
    assert a == pytest.approx(b, rel=1e-12)


def test_slerp_identity_decoder():
    model = LinearDecoder(torch.eye(6, dtype=torch.float64))
    n, seed = 200, 4
    _, dists = perceptual_path_length(model, flatten, n=n, seed=seed, interpolation="slerp", epsilon=1e-5,
                                      return_distances=True)
    z0, z1, _ = _draws(n, 6, seed)
    cos = (z0 * z1).sum(1) / (z0.norm(dim=1) * z1.norm(dim=1))
    theta = torch.acos(cos).numpy()  # unit-speed great circle of angle theta, traversed in t in [0, 1]
    np.testing.assert_allclose(dists, theta ** 2, rtol=1e-3)


def test_conditional_labels_are_passed(model):
    labels = torch.arange(10) % 3
    perceptual_path_length(model, flatten, n=10, batch_size=4, labels=labels)
    first = model.seen_labels[0]
    assert torch.equal(first, torch.cat([labels[:4], labels[:4]]))


def test_errors(model):
    with pytest.raises(ConfigError, match="space"):
        perceptual_path_length(model, flatten, n=10, space="w")
    with pytest.raises(ConfigError, match="interpolation"):
        perceptual_path_length(model, flatten, n=10, interpolation="cubic")
    with pytest.raises(DataError, match="labels"):
        perceptual_path_length(model, flatten, n=10, labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ConfigError, match="Linear is not a genlab model"):
        perceptual_path_length(nn.Linear(2, 2), flatten, n=10)

    class NoDecoder(LinearDecoder):
        has_decoder = False

    with pytest.raises(ConfigError, match="lacks the capability 'has_decoder' .* that perceptual_path_length needs; "
                                          "use one of: .*ae.*gan.*vae") as e:
        perceptual_path_length(NoDecoder(model.weight.detach()), flatten, n=10)
    assert "\n" not in str(e.value)


def test_conditional_models_need_labels_for_decode_and_ppl():
    """A conditional GAN's ``decode(z)`` drew random labels from the global RNG (the same z decoded differently
    on each call, and PPL compared path ends of different classes: 3.3e5 against a vae's 0.04); both refuse now."""
    from genlab import testing
    from genlab.errors import ConfigError
    from genlab.metrics.ppl import perceptual_path_length as ppl
    data = testing.tiny_image_data()
    cgan = testing.build("cgan", data, {"latent_dim": 4}).eval()
    z = torch.randn(3, 4)
    with pytest.raises(ConfigError, match=r"cgan\.decode needs labels \(N,\) in \[0, 3\]"):
        cgan.decode(z)
    y = torch.tensor([0, 1, 2])
    assert torch.equal(cgan.decode(z, y), cgan.decode(z, y))
    with pytest.raises(ConfigError, match="conditional model \\(cgan\\) needs labels"):
        ppl(cgan, lambda x: x.flatten(1), n=4)
    assert ppl(cgan, lambda x: x.flatten(1), n=4, labels=torch.arange(4) % 4) >= 0
