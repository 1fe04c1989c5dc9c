import pytest
import torch
from torch import nn

from genlab.errors import ConfigError, DataError
from genlab.metrics import classification_accuracy
from genlab.models import GenerativeModel


class OneHotModel(GenerativeModel):
    """'Generates' the one-hot image of the requested class, except class 2 comes out as class 0."""

    conditional = True
    can_reconstruct = False
    latent_dim = 1

    def __init__(self, num_classes=4):
        super().__init__(None, {"kind": "tabular", "shape": (num_classes,)})
        self.num_classes = num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def sample(self, n, *, labels=None, generator=None):
        out = labels.clone()
        out[out == 2] = 0
        return nn.functional.one_hot(out, self.num_classes).float().view(n, 1, 1, self.num_classes)


def test_accuracy_and_per_class():
    labels = torch.tensor([0, 1, 2, 3, 2, 1, 0, 3, 3])
    res = classification_accuracy(OneHotModel(), lambda x: x.flatten(1), labels, batch_size=4)
    assert res["accuracy"] == pytest.approx(7 / 9)
    assert res["per_class"] == {0: 1.0, 1: 1.0, 2: 0.0, 3: 1.0}
    assert res["n"] == 9


def test_bad_labels():
    with pytest.raises(DataError, match="labels"):
        classification_accuracy(OneHotModel(), lambda x: x.flatten(1), torch.zeros(2, 2, dtype=torch.long))


def test_refuses_a_model_that_is_not_a_conditional_sampler():
    class Unconditional(OneHotModel):
        conditional = False

    with pytest.raises(ConfigError, match="model '.*' lacks the capability 'conditional' .* that "
                                          "classification_accuracy needs; use one of: acgan, cgan, .*cvae") as e:
        classification_accuracy(Unconditional(), lambda x: x.flatten(1), torch.tensor([0, 1]))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="not a genlab model"):
        classification_accuracy(nn.Linear(2, 2), lambda x: x, torch.tensor([0, 1]))
