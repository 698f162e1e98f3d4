"""Exact teacher-logit caching under crop (+ flip): every view of every distillation image is labelled once.

Under `crop` and `crop_flip` an augmented image is one of a finite set of views of its original (162 for CIFAR's
crop with 4-pixel padding and a flip, `augment.view_count`), and the teacher labels in eval mode, so its logits on
every view can be computed once and looked up by (index, view id) at each step instead of a teacher forward pass
per batch. That saves work only when a run makes more passes over its distillation set than there are views: the
paper's 300 epochs against 162 views, not the 15-39 epochs of the `gpu` and `budget` profiles. The cache holds the
ensemble's combined logits (what the loss reads), in float32; tests/test_logit_cache.py checks that it equals the
online teacher on every view and that a student distilled from it takes the same steps.
"""

from collections.abc import Callable

import torch

from . import augment, data
from .config import StudentConfig

MAX_BYTES = 4 << 30  # a cache larger than this (N x views x classes x 4 bytes) is not built: label online instead
# On the CPU a rerun stays bit-identical to the stored runs, which were labelled online; a GPU rerun never is.
DEVICES = ("cuda",)


def pays(cfg: StudentConfig, examples: int, device_type: str) -> bool:
    """Whether a student of `examples` distillation images labels them from a cache on `device_type`: one of
    DEVICES, a policy with finitely many views, more passes over the set than there are views, and a cache that fits
    in MAX_BYTES."""
    views = augment.view_count(cfg.augment, cfg.crop_pad)
    return (device_type in DEVICES and views is not None and cfg.steps * cfg.batch_size > views * examples
            and examples * views * data.NUM_CLASSES[cfg.dataset] * 4 <= MAX_BYTES)


@torch.no_grad()
def build(label: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, policy: str, pad: int,
          device: torch.device, batch_size: int = 1000) -> torch.Tensor:
    """The logits [N, views, K] that `label` (the training loop's online teacher call: a channels_last float batch
    in, float32 logits out) gives on every view of the uint8 images x."""
    cache = None
    for v in range(augment.view_count(policy, pad)):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            xb = augment.at_views(xb, policy, pad, torch.full((len(xb),), v))
            # copied out at once: a compiled labeller (CUDA graphs) may reuse its output buffer on the next call
            out = label(xb.contiguous(memory_format=torch.channels_last))
            if cache is None:
                cache = torch.empty(len(x), augment.view_count(policy, pad), out.shape[1], device=device)
            cache[i:i + len(xb), v] = out
    return cache
