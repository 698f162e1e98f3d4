"""A run's optimizer, its learning rate at each step (a cosine over the run's optimizer steps, the
paper's App. A.3) and the steps after which it is evaluated."""

import math

import torch

from .config import RunConfig


def cosine_lr(step: int, steps: int, lr: float, lr_min: float) -> float:
    """The learning rate before optimizer step `step` of `steps`: a cosine from lr (step 0) to
    lr_min (the end)."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * step / steps)) / 2


def lr_at(cfg: RunConfig, lr: float, step: int) -> float:
    """The run's learning rate before optimizer step `step`, starting from `lr` (the config's, or
    the scaled one of a start near the teacher): a linear warm-up to lr over the config's warm-up
    steps where it has some (ImageNet's recipe, App. A.3), then a cosine down to lr_min, or to lr
    itself when that is lower."""
    warm = cfg.warmup_steps
    if step < warm:
        return lr * (step + 1) / warm
    return cosine_lr(step - warm, cfg.steps - warm, lr, min(cfg.lr_min, lr))


def eval_steps(steps: int, evals: int) -> set[int]:
    """Steps after which the test set is evaluated: `evals` evenly spaced, the last one included."""
    return {max(1, round(k * steps / evals)) for k in range(1, evals + 1)}


def optimizer(cfg: RunConfig, params, lr: float) -> torch.optim.Optimizer:
    """The run's optimizer (SGD with Nesterov momentum, or Adam) at learning rate lr."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )
