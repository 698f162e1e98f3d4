"""What a run trains on and from: its training (or distillation) and test sets, the stream of
index batches (a function of the step alone, so a resumed run continues the same sequence), the
augmented batches, and its initial network (random from its init seed, or interpolated towards its
teacher as in the paper's Fig. 6b)."""

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from . import augment, data, models
from .config import RunConfig


def training_set(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's training (or distillation) images and labels, on the CPU, as uint8 / int64.

    Another dataset's images (a student's `ood_dataset`: Fig. 3's out-of-distribution images, Fig.
    2's EMNIST) are resized and given the run's channel count where they differ; their label is
    -1: they have none. A memory-mapped dataset (`data.MAPPED`) is its whole split in file order,
    not copied (its configs allow no subset)."""
    x, y = data.load(cfg.dataset, "train")
    if cfg.dataset in data.MAPPED:
        return x, y
    idx = data.subset(y, cfg.train_size, cfg.train_part, cfg.subset_seed)
    x, y = x[idx], y[idx]
    if getattr(cfg, "ood_dataset", None):
        ox, oy = data.load(cfg.ood_dataset, "train")
        ox = ox[data.subset(oy, cfg.ood_size, "all", cfg.subset_seed)]
        if ox.shape[1:] != x.shape[1:]:  # skipped, not computed, where it is the identity
            ox = ox.float()
            ox = ox.mean(1, keepdim=True) if x.shape[1] == 1 else ox.expand(-1, x.shape[1], -1, -1)
            ox = F.interpolate(
                ox, size=x.shape[-2:], mode="bilinear", antialias=True, align_corners=False
            )
            ox = ox.round().clamp(0, 255).to(torch.uint8)
        x = torch.cat([x, ox])
        y = torch.cat([y, torch.full((len(ox),), -1, dtype=y.dtype)])
    return x, y


def test_set(cfg: RunConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split on the device, or its stratified `test_size` subset (smoke runs)."""
    x, y = data.load(cfg.dataset, "test")
    if cfg.test_size is not None:
        keep = data.subset(y, cfg.test_size, "all", 0)
        x, y = x[keep], y[keep]
    return x.to(device), y.to(device)


def network(
    model: str, dataset: str, norm: str = "batch", width: int = 1, vocab: int | None = None
) -> nn.Module:
    """`model` for `dataset`'s examples (images, or token ids of its vocabulary) and classes,
    initialized from torch's global RNG. `vocab` overrides a text dataset's vocabulary size,
    which otherwise comes from its data."""
    if dataset in data.TEXT:
        vocab = vocab or data.vocab_size(dataset)
        return models.build(model, data.NUM_CLASSES[dataset], vocab=vocab)
    channels, size, _ = data.SHAPES[dataset]
    return models.build(
        model,
        data.NUM_CLASSES[dataset],
        in_channels=channels,
        norm=norm,
        width=width,
        image_size=size,
    )


def new_model(cfg: RunConfig) -> nn.Module:
    """The run's network, freshly initialized from its init seed (on the CPU)."""
    torch.manual_seed(cfg.init_seed_used)
    return network(cfg.model, cfg.dataset, cfg.norm, cfg.width)


def batch_indices(n: int, batch_size: int, seed: int, start: int = 0) -> Iterator[torch.Tensor]:
    """Index batches of exactly `batch_size`, from step `start` on. Epoch e is a permutation of
    range(n) seeded by (seed, e), and batches run on across epoch boundaries, so batch s is a
    function of s alone: a resumed run needs only its step to continue the same sequence."""
    epoch, offset = divmod(start * batch_size, n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    while True:
        parts, need = [], batch_size
        while need:
            take = min(need, n - offset)
            parts.append(perm[offset : offset + take])
            need, offset = need - take, offset + take
            if offset == n:
                epoch, offset = epoch + 1, 0
                perm = torch.randperm(
                    n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)
                )
        yield torch.cat(parts)


def union_indices(
    sizes: tuple[int, int], batch_size: int, seed: int, start: int = 0
) -> Iterator[torch.Tensor]:
    """Batches of two concatenated sets, half of each batch from each (the paper's s0∪1 student,
    Fig. 4): each half is its own `batch_indices` stream, so batch s is still a function of s alone.
    """
    first = batch_indices(sizes[0], batch_size // 2, seed, start)
    second = batch_indices(sizes[1], batch_size // 2, seed + 500_009, start)  # its own stream
    for a, b in zip(first, second):
        yield torch.cat([a, b + sizes[0]])


def run_indices(cfg: RunConfig, n: int, start: int = 0) -> Iterator[torch.Tensor]:
    """The run's batches of indices into its training set of `n` examples, from step `start` on."""
    if cfg.train_part == "D0+D1":
        n0 = cfg.train_size or data.part_size(cfg.dataset, "D0")
        return union_indices((n0, n - n0), cfg.batch_size, cfg.seed, start)
    return batch_indices(n, cfg.batch_size, cfg.seed, start)


def batches(
    x: torch.Tensor,
    indices: Iterator[torch.Tensor],
    aug: augment.Augment,
    gen: torch.Generator,
    device: torch.device | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Endless (indices, augmented float images, view ids or None) batches of uint8 images `x`
    (text: int64 token ids, no views), on `device` (x's own where None: x is device-resident, or
    memory-mapped on the CPU and copied a batch at a time); `gen` draws the augmentations."""
    device = device or x.device
    for idx in indices:
        xb, views = aug(x[idx.to(x.device)].to(device, non_blocking=True), gen)
        yield idx.to(device), data.layout(xb), views


def interpolate_(student: nn.Module, teacher: nn.Module, lam: float) -> None:
    """theta_s <- lam * theta_t + (1 - lam) * theta_s for every parameter (the paper's Fig. 6b); lam
    = 1 copies exactly."""
    with torch.no_grad():
        for ps, pt in zip(student.parameters(), teacher.parameters(), strict=True):
            ps.copy_(pt if lam == 1 else lam * pt + (1 - lam) * ps)


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, x: torch.Tensor, device, batch_size: int = 500) -> None:
    """Re-estimate BatchNorm running statistics on un-augmented images (a cumulative average over
    all of x)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for i in range(0, len(x), batch_size):
        model(data.as_input(x[i : i + batch_size].to(device)))
    for bn in bns:
        bn.momentum = 0.1
