"""A network's eval-mode logits on un-augmented images, a teacher's labels of a training batch, and
the test metrics of logits (accuracy, fidelity to a teacher and to an independent control)."""

import torch
from torch import nn

from . import data, metrics
from .config import RunConfig
from .devices import autocast
from .inputs import new_model, test_set, training_set


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    batch_size: int = 1000,
    bf16: bool = True,
) -> torch.Tensor:
    """Float32 logits of `model` in eval mode on un-augmented uint8 images `x` (any device);
    computed in bf16 on a GPU unless `bf16` is False (for quantities near 0, such as the KL of a
    student that matches its teacher)."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = data.as_input(x[i : i + batch_size].to(device))
        with autocast(device, bf16):
            out.append(model(xb).float())
    return torch.cat(out)


def evaluate(
    logits: torch.Tensor, y: torch.Tensor, teacher_logits=None, control_logits=None
) -> dict:
    """Test metrics of logits; fidelity to the teacher (and to an independent teacher) when theirs
    are given. `top_class_share` (the most frequent prediction's share) exposes a network that
    predicts a constant."""
    meter = metrics.Meter()
    meter.update(logits, y, teacher_logits)
    result = meter.compute()
    result["top_class_share"] = logits.argmax(1).bincount().max().item() / len(logits)
    if control_logits is not None:
        result["control_agreement"] = metrics.agreement(control_logits, logits)
        result["control_kl"] = metrics.predictive_kl(control_logits, logits)
    return result


@torch.no_grad()
def probe(cfg: RunConfig, weights: dict, device: torch.device, n: int = 6) -> dict:
    """A trained network's logits on the first n images of its training set and of the test set:
    what the paper's Fig. 8 shows a student is asked to match."""
    model = new_model(cfg)
    model.load_state_dict(weights)
    model.to(device, memory_format=torch.channels_last)
    x_train, _ = training_set(cfg)
    x_test, _ = test_set(cfg, device)
    return {
        "train": predict(model, x_train[:n], device).tolist(),
        "test": predict(model, x_test[:n], device).tolist(),
    }


@torch.no_grad()
def label_batch(teacher: nn.Module, xb: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The eval-mode teacher's float32 logits of a training batch, as the loss reads them (bf16
    autocast on a GPU)."""
    with autocast(device):
        return teacher(xb).float()
