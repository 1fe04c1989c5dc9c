import pytest
import torch
from torch import nn

from genlab.errors import DataError
from genlab.metrics import classification_accuracy


class OneHotModel(nn.Module):
    """'Generates' the one-hot image of the requested class, except class 2 comes out as class 0."""

    latent_dim = 1

    def __init__(self, num_classes=4):
        super().__init__()
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
