"""Exact teacher-logit caching under crop (+ flip): every view of every distillation image is
labelled once.

Under `crop` and `crop_flip` an augmented image is one of a finite set of views of its original (162
for CIFAR's crop with 4-pixel padding and a flip, `augment.view_count`), and the teacher labels in
eval mode, so its logits on every view can be computed once and looked up by (index, view id) at
each step instead of a teacher forward pass per batch. A student uses the cache when it makes more
passes over its distillation set than there are views (the paper's 300 epochs against 162 views): a
rule of its config alone, so a rerun labels as the stored run did.

The cache holds the ensemble's combined logits (what the loss reads), in float32, in one
digest-carrying file of the cache folder. Its name hashes the teachers' weights, the distillation
images, the policy, the device type and the training fingerprint, so every student of that ensemble,
set and policy reads the same file (the 1x and 2x students of a length control, chapter 4's crop +
flip students) and no other student can. It is written once, atomically, after it is complete: a
build killed midway leaves nothing and is redone. tests/test_logit_cache.py checks that it equals
the online teacher on every view and that a student distilled from it takes the same steps.
"""

import hashlib
import json
import sys
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from . import augment, data
from .config import StudentConfig
from .files import CorruptFile, load_tensors, save_tensors
from .paths import cache_dir

MAX_BYTES = (
    4 << 30
)  # a cache larger than this (N x views x classes x 4 bytes) is not built: label online instead
# Images per labelling batch: fixed, so the same machine always builds the same cache. 128, not
# 1000: a PreResNet-8 labels about 4,400 images/s at 128 on the project's 2-core CPU and 1,900 at
# 1000 (the larger batch's activations spill out of cache). Caches built at 1000 stay valid: here
# both batches gave bit-identical logits (600 images x 162 views), so `key` does not include it.
BATCH = 128


def pays(cfg: StudentConfig) -> bool:
    """Whether a student labels its distillation set from a cache: a policy with finitely many
    views, more passes over the set than there are views, and a cache that fits in MAX_BYTES."""
    views = augment.view_count(cfg.augment, cfg.crop_pad)
    return (
        views is not None
        and cfg.steps * cfg.batch_size > views * cfg.examples
        and cfg.examples * views * data.NUM_CLASSES[cfg.dataset] * 4 <= MAX_BYTES
    )


def shared_by(cfg: StudentConfig) -> tuple:
    """What students reading one cache have in common, from their configs (for estimates): the
    teachers, the distillation set and the policy."""
    return (
        tuple(t.run_id for t in cfg.teachers),
        cfg.dataset,
        cfg.train_part,
        cfg.train_size,
        cfg.subset_seed,
        cfg.ood_dataset,
        cfg.ood_size,
        cfg.augment,
        cfg.crop_pad,
    )


def key(
    teacher: nn.Module, x: torch.Tensor, policy: str, pad: int, device_type: str, stamp: dict
) -> str:
    """The cache's name: sha256 of the teachers' weights and buffers, the uint8 images, the policy,
    the device type and `stamp` (the training fingerprint: numerics and library versions), first 16
    hex digits."""
    h = hashlib.sha256()
    for name, tensor in teacher.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(x.cpu().contiguous().numpy().tobytes())
    h.update(
        json.dumps(
            {"policy": policy, "pad": pad, "device": device_type, **stamp}, sort_keys=True
        ).encode()
    )
    return h.hexdigest()[:16]


def load_or_build(
    label: Callable[[torch.Tensor], torch.Tensor],
    teacher: nn.Module,
    x: torch.Tensor,
    policy: str,
    pad: int,
    device: torch.device,
    stamp: dict,
) -> torch.Tensor:
    """The cache of `teacher` (called through `label`) on the images x, from the cache folder when a
    file of its key is there and passes its digest check, else built now and saved (a corrupt file
    is rebuilt with a warning)."""
    path = cache_dir("logits") / f"{key(teacher, x, policy, pad, device.type, stamp)}.pt"
    if path.exists():
        try:
            cache, _ = load_tensors(path)
            if cache.shape[:2] != (len(x), augment.view_count(policy, pad)):
                raise CorruptFile(f"{path}: shape {tuple(cache.shape)} is not this set's")
            return cache.to(device)
        except CorruptFile as e:
            tqdm.write(f"warning: {e}; rebuilding the logit cache", file=sys.stderr)
    cache = build(label, x, policy, pad, device)
    save_tensors(path, cache.cpu())
    return cache


@torch.no_grad()
def build(
    label: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    policy: str,
    pad: int,
    device: torch.device,
    batch_size: int = BATCH,
) -> torch.Tensor:
    """The logits [N, views, K] that `label` (the training loop's online teacher call: a
    channels_last float batch in, float32 logits out) gives on every view of the uint8 images x."""
    cache = None
    for v in range(augment.view_count(policy, pad)):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            xb = augment.at_views(xb, policy, pad, torch.full((len(xb),), v))
            # copied out at once: a compiled labeller (CUDA graphs) may reuse its output buffer on
            # the next call
            out = label(data.layout(xb))
            if cache is None:
                cache = torch.empty(
                    len(x), augment.view_count(policy, pad), out.shape[1], device=device
                )
            cache[i : i + len(xb), v] = out
    return cache
