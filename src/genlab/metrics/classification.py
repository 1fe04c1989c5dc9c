"""Conditional-generation accuracy: does a classifier recognise the requested class?"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..errors import DataError
from ..models.base import require
from ._common import check_positive_int


def classification_accuracy(model: nn.Module, classifier: Callable[[torch.Tensor], torch.Tensor], labels: Any, *,
                            batch_size: int = 256, seed: int = 0) -> dict:
    """Accuracy of ``classifier`` on samples ``model.sample(B, labels=..., generator=...)`` of a conditional
    sampler (a model that declares ``conditional`` and ``can_sample``, checked with :func:`genlab.models.require`).

    Conventions: samples are drawn in batches of ``batch_size`` in the order of ``labels``, all
    from one ``torch.Generator`` on the model's device seeded with ``seed``; the prediction is
    the argmax of ``classifier(x)`` logits (ties -> lowest index), with the model and (when it is an
    ``nn.Module``) the classifier in eval mode, restored afterwards; ``per_class`` is the accuracy over
    the samples requested for that class (classes absent from ``labels`` are omitted).

    Returns
    -------
    dict
        ``{"accuracy": float, "per_class": {class: float}, "n": int}``.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    y = torch.as_tensor(labels)
    if y.ndim != 1 or y.numel() == 0 or y.is_floating_point():
        raise DataError(f"labels must be a non-empty 1-D integer array, got shape {tuple(y.shape)} dtype {y.dtype}")
    require(model, "conditional", "can_sample", purpose="classification_accuracy")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    gen = torch.Generator(device=device).manual_seed(seed)
    preds = []
    modules = [m for m in (model, classifier) if isinstance(m, nn.Module)]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            for lo in range(0, y.numel(), batch_size):
                yb = y[lo:lo + batch_size].to(device)
                x = model.sample(yb.numel(), labels=yb, generator=gen)
                logits = classifier(x)
                if logits.ndim != 2 or logits.shape[0] != yb.numel():
                    raise DataError(f"classifier must return logits of shape (B, num_classes), got "
                                    f"{tuple(logits.shape)} for B={yb.numel()}")
                preds.append(logits.argmax(dim=1).cpu())
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
    pred = torch.cat(preds)
    y = y.cpu()
    correct = pred == y
    per_class = {int(c): float(correct[y == c].double().mean()) for c in torch.unique(y)}
    return {"accuracy": float(correct.double().mean()), "per_class": per_class, "n": int(y.numel())}
