"""Training throughput: kdrepro's device-resident pipeline against the paper code's DataLoader
pipeline.

python -m kdrepro.bench [--device cpu|cuda|auto] [--cases lenet5 preresnet20 [preresnet56]]
[--images N] [--repeats 3] [--workers W] [--pack G] [--distill M] [--json PATH]

Both pipelines train the same freshly seeded model with the same SGD step (the paper's Nesterov SGD)
on the same training split, batch 128, in one process, and the repeats alternate between them so
machine noise hits both alike. Only steps after `warmup` are timed, and the DataLoader's worker
start-up is never inside the timed window (it would be in a real epoch), so the conventional numbers
are, if anything, flattering.

kdrepro: uint8 images on the device, a per-step index gather, batched `augment.make` ops,
channels_last, bf16 autocast on CUDA, and torch.compile (CUDA graphs on a GPU) with
KDREPRO_COMPILE=1 (as `train.fit`). Conventional (the paper's `gnosis` code): a Dataset of HWC uint8
arrays turned into PIL images per item (as torchvision's CIFAR10/MNIST do),
RandomCrop/RandomHorizontalFlip/ToTensor/Normalize per sample, `DataLoader(shuffle=True)`,
contiguous-format fp32 model. The paper's config leaves `num_workers` at DataLoader's default 0; we
use one worker per core (2 on the 2-core CPU), the usual recipe, as the stronger baseline.

`--pack G` also times G networks packed into one (`kdrepro.packed`), each on its own batch, in
model-images/s: the throughput of a sweep that trains G runs at once. `--distill M` also times a
student of an M-teacher ensemble on the path a sweep takes: under crop (+ flip) its labels come from
a teacher-logit cache (`logit_cache`), whose build is timed on `--cache-images` images and charged
at the share the book's `budget` students give it (student images read per cached view:
`amortisation`); under other policies the ensemble labels each batch online. It reports the
student's step in teacher steps (the target: at most 1.5 for M <= 5).
"""

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from . import augment, data, logit_cache, models, store
from .cases import CASES
from .checkpoint import fingerprint
from .devices import autocast, compiled, compiling, resolve_device, step_begins
from .files import atomic_write
from .inputs import batch_indices, batches
from .losses import kd_loss
from .packed import Packed
from .predictions import label_batch

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]
EPOCH = 50_000  # images in a CIFAR training epoch, for the seconds-per-epoch column
DISTILL_TARGET = 1.5  # a student step from up to 5 teachers, in teacher steps (crop + flip)


def cores() -> int:
    """CPU cores this process may use: the conventional pipeline's default number of DataLoader
    workers."""
    return len(os.sched_getaffinity(0))


def _nets(
    name: str, dataset: str, x: torch.Tensor, count: int = 1, seed: int = 0
) -> list[nn.Module]:
    """`count` networks `name` for `x`'s images, built one after another from torch seeded with
    `seed` (seed 0, one network: the same initial weights for both pipelines)."""
    torch.manual_seed(seed)
    return [
        models.build(
            name, data.NUM_CLASSES[dataset], in_channels=x.shape[1], image_size=x.shape[-1]
        )
        for _ in range(count)
    ]


def _ensemble(
    name: str, dataset: str, x: torch.Tensor, members: int, device: torch.device
) -> nn.Module:
    """A benchmark's teacher: `members` networks `name` (seed 1), in eval mode on `device`."""
    ensemble = models.Ensemble(_nets(name, dataset, x, members, seed=1))
    return ensemble.to(device, memory_format=torch.channels_last).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_steps(
    model: nn.Module,
    batches: Batches,
    images: int,
    warmup: int,
    device: torch.device,
    amp: bool,
    teacher: nn.Module | None = None,
    soft: bool = False,
) -> float:
    """Images/s of SGD steps on `batches` (drawing a batch is timed too); the first `warmup` steps
    are not timed. A packed model's batches are (G, B, ...) with labels (G, B): its loss is the sum
    of the G networks' mean losses, and every image of every network counts. With a `teacher`, the
    steps distill from its labels of each batch; with `soft`, the batches carry the teacher's logits
    (from a cache) in place of labels."""
    model.train()
    # the paper's optimizer (gnosis config/image_classification.yaml); its values do not change the
    # cost of a step
    opt = torch.optim.SGD(
        model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4
    )
    forward = compiled(model, device) if amp else model  # the kdrepro side as `train.fit` runs it
    labeller = compiled(teacher, device) if teacher is not None else None

    def step() -> int:
        xb, yb = next(batches)
        if amp:
            step_begins(device)
        with autocast(device) if amp else contextlib.nullcontext():
            out = forward(xb).float()
            if soft:
                loss = kd_loss(out, yb, 4.0)
            elif labeller is not None:
                loss = kd_loss(out, label_batch(labeller, xb, device), 4.0)
            else:
                loss = (
                    F.cross_entropy(out.flatten(0, -2), yb.flatten(), reduction="sum")
                    / yb.shape[-1]
                )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(yb) if soft else yb.numel()

    for _ in range(warmup):
        step()
    _sync(device)
    done, t0 = 0, time.perf_counter()
    while done < images:
        done += step()
    _sync(device)
    return done / (time.perf_counter() - t0)


# --- kdrepro
# ------------------------------------------------------------------------------------------------


def kdrepro_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, policy: str, pad: int
) -> Batches:
    """Endless shuffled, augmented batches from device-resident uint8 images, as the inner loop of
    `train.fit`."""
    for idx, xb, _ in batches(
        x,
        batch_indices(len(x), batch_size, 0),
        augment.make(policy, pad),
        torch.Generator().manual_seed(0),
    ):
        yield xb, y[idx]


def kdrepro_throughput(
    model_name: str,
    dataset: str,
    images: int,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    policy: str = "crop_flip",
    pad: int = 4,
    warmup: int = 5,
    teachers: int = 0,
) -> float:
    """Training images/s of the kdrepro pipeline on the `dataset` training split; with `teachers` >
    0, of a student distilled (tau = 4) from an ensemble of that many networks of its architecture,
    labelling each batch online."""
    device = resolve_device(device)
    x, y = (t.to(device) for t in data.load(dataset, "train"))
    model = _nets(model_name, dataset, x)[0].to(device, memory_format=torch.channels_last)
    teacher = _ensemble(model_name, dataset, x, teachers, device) if teachers else None
    return _timed_steps(
        model,
        kdrepro_batches(x, y, batch_size, policy, pad),
        images,
        warmup,
        device,
        amp=True,
        teacher=teacher,
    )


def amortisation(teachers: int, model: str) -> float | None:
    """Student images read per cached view-image, over the book's `budget` students (networks
    `model`) of `teachers`-teacher ensembles that label from a logit cache (students of one
    ensemble, set and policy share one cache, as in a sweep); None when none does."""
    # the book's plans: imported here, so that the benchmark's other uses need no chapters
    from . import chapters
    from .plan import students_of

    reads, built = 0, {}
    for name in chapters.CHAPTERS:
        for plan in chapters.plans(name, "budget"):
            for s in students_of(plan):
                if len(s.teachers) == teachers and s.model == model and logit_cache.pays(s):
                    reads += s.steps * s.batch_size
                    built[logit_cache.shared_by(s)] = s.examples * augment.view_count(
                        s.augment, s.crop_pad
                    )
    return reads / sum(built.values()) if built else None


def cached_throughput(
    model_name: str,
    dataset: str,
    images: int,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    policy: str = "crop_flip",
    pad: int = 4,
    warmup: int = 5,
    teachers: int = 5,
    cache_images: int = 200,
) -> tuple[float, float]:
    """(student training images/s reading its labels from a logit cache, cached view-images/s built
    by the `teachers`-teacher ensemble) on the first `cache_images` training images, as `train.fit`
    builds and reads it."""
    device = resolve_device(device)
    x, y = (t[:cache_images].to(device) for t in data.load(dataset, "train"))
    model = _nets(model_name, dataset, x)[0].to(device, memory_format=torch.channels_last)
    labeller = compiled(_ensemble(model_name, dataset, x, teachers, device), device)
    _sync(device)
    t0 = time.perf_counter()
    cache = logit_cache.build(lambda xb: label_batch(labeller, xb, device), x, policy, pad, device)
    _sync(device)
    built = cache.shape[0] * cache.shape[1] / (time.perf_counter() - t0)

    def looked_up() -> Batches:
        for idx, xb, views in batches(
            x,
            batch_indices(len(x), batch_size, 0),
            augment.make(policy, pad),
            torch.Generator().manual_seed(0),
        ):
            yield xb, cache[idx, views.to(device)]

    return _timed_steps(model, looked_up(), images, warmup, device, amp=True, soft=True), built


def packed_throughput(
    model_name: str,
    dataset: str,
    images: int,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    policy: str = "crop_flip",
    pad: int = 4,
    warmup: int = 5,
    groups: int = 8,
) -> float:
    """Training model-images/s of `groups` networks packed into one, each on its own batch of the
    kdrepro pipeline."""
    device = resolve_device(device)
    x, y = (t.to(device) for t in data.load(dataset, "train"))
    nets = [_nets(model_name, dataset, x, seed=g)[0] for g in range(groups)]
    model = Packed(nets).to(device, memory_format=torch.channels_last)
    stream = kdrepro_batches(x, y, batch_size, policy, pad)

    def stacked() -> Batches:
        while True:
            xs, ys = zip(*(next(stream) for _ in range(groups)))
            yield torch.stack(xs), torch.stack(ys)

    return _timed_steps(model, stacked(), images * groups, warmup, device, amp=True)


# --- conventional (the paper's code)
# ------------------------------------------------------------------------------


class PILDataset(Dataset):
    """Images held as numpy uint8 HWC (HW for one channel) and made into a PIL image per item, like
    torchvision's CIFAR10 and MNIST datasets, then passed through `transform`."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: transforms.Compose):
        hwc = x.permute(0, 2, 3, 1).numpy()
        self.images = np.ascontiguousarray(hwc[..., 0] if x.shape[1] == 1 else hwc)
        self.targets, self.transform = y.tolist(), transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), self.targets[i]


def conventional_transform(policy: str, pad: int, size: int, channels: int) -> transforms.Compose:
    """The per-sample torchvision transforms equal to kdrepro's `policy` ("crop" or "crop_flip")."""
    if policy not in ("crop", "crop_flip"):
        raise ValueError(f"policy={policy!r}: the benchmark compares 'crop' or 'crop_flip' only")
    flip = [transforms.RandomHorizontalFlip()] if policy == "crop_flip" else []
    return transforms.Compose(
        [
            transforms.RandomCrop(size, padding=pad),
            *flip,
            transforms.ToTensor(),
            transforms.Normalize((0.5,) * channels, (0.5,) * channels),
        ]
    )


def conventional_loader(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    policy: str,
    pad: int,
    workers: int,
    pin_memory: bool = False,
) -> DataLoader:
    """The paper code's training DataLoader over uint8 images `x` (N, C, H, W) on the CPU."""
    ds = PILDataset(x, y, conventional_transform(policy, pad, x.shape[-1], x.shape[1]))
    return DataLoader(
        ds, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=pin_memory
    )


def _forever(loader: DataLoader, device: torch.device) -> Batches:
    while True:  # a new epoch restarts the workers, as in the paper's training loop
        for xb, yb in loader:
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def conventional_throughput(
    model_name: str,
    dataset: str,
    images: int,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    policy: str = "crop_flip",
    pad: int = 4,
    warmup: int = 5,
    workers: int | None = None,
) -> float:
    """Training images/s of the paper's pipeline; `workers` defaults to one DataLoader worker per
    core."""
    device = resolve_device(device)
    workers = cores() if workers is None else workers
    x, y = data.load(dataset, "train")
    loader = conventional_loader(
        x, y, batch_size, policy, pad, workers, pin_memory=device.type == "cuda"
    )
    model = _nets(model_name, dataset, x)[0].to(device)
    batches = _forever(loader, device)
    try:
        return _timed_steps(model, batches, images, warmup, device, amp=False)
    finally:
        batches.close()  # stop the workers now, so they take no CPU from the next measurement


# --- command line
# --------------------------------------------------------------------------------------------------


def measure(
    name: str,
    device: torch.device,
    images: int | None,
    repeats: int,
    batch_size: int,
    warmup: int,
    workers: int | None,
    pack: int = 1,
    distill: int = 0,
    cache_images: int = 200,
) -> dict:
    """One table row: median images/s of each pipeline over `repeats` alternating measurements (and,
    with pack > 1, of `pack` packed networks, in model-images/s; with distill > 0, of a student of
    that many teachers on a sweep's path, and its step's cost in teacher steps)."""
    case = CASES[name]
    images = images or case.images[device.type]
    args = (case.model, case.dataset, images, batch_size, device, case.policy, case.pad, warmup)
    ours, theirs, packed, distilled = [], [], [], []
    share = (
        amortisation(distill, case.model)
        if distill and augment.view_count(case.policy, case.pad)
        else None
    )
    cached = share is not None
    for _ in range(repeats):
        ours.append(kdrepro_throughput(*args))
        theirs.append(conventional_throughput(*args, workers=workers))
        if pack > 1:
            packed.append(packed_throughput(*args, groups=pack))
        if distill and cached:
            distilled.append(cached_throughput(*args, teachers=distill, cache_images=cache_images))
        elif distill:
            distilled.append((kdrepro_throughput(*args, teachers=distill), None))
    k, c = statistics.median(ours), statistics.median(theirs)
    row = {
        "case": name,
        "device": str(device),
        "images": images,
        "kdrepro": k,
        "conventional": c,
        "ratio": k / c,
        "target": case.target,
        "kdrepro_runs": ours,
        "conventional_runs": theirs,
        "epoch_seconds": EPOCH / k,
        "conventional_epoch_seconds": EPOCH / c,
    }
    if pack > 1:
        row.update(pack=pack, packed=statistics.median(packed), packed_runs=packed)
    if distill:
        d = statistics.median(rate for rate, _ in distilled)
        cost = k / d
        if cached:  # the build, charged per student image at the share the book's students give it
            built = statistics.median(b for _, b in distilled)
            cost += k / (built * share)
            row.update(
                cache_built=built,
                cache_build_runs=[b for _, b in distilled],
                amortisation=share,
                cache_images=cache_images,
            )
        row.update(
            teachers=distill,
            distilled=d,
            distilled_runs=[r for r, _ in distilled],
            distill_cost=cost,
            distill_target=DISTILL_TARGET,
            cached_teacher=cached,
        )
    row["met"] = row["ratio"] >= case.target and (
        device.type != "cuda"
        or case.epoch_target is None
        or row["epoch_seconds"] <= case.epoch_target
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kdrepro.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=None,
        choices=sorted(CASES),
        help="default: lenet5 preresnet20, plus preresnet56 on CUDA",
    )
    parser.add_argument(
        "--images", type=int, help="images timed per measurement (default: per case and device)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="alternating measurements; the median is reported"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed steps before each measurement"
    )
    parser.add_argument(
        "--workers", type=int, help="conventional DataLoader workers (default: one per core)"
    )
    parser.add_argument(
        "--pack", type=int, default=1, help="also time this many packed networks (model-images/s)"
    )
    parser.add_argument(
        "--distill",
        type=int,
        default=0,
        help="also time a student of this many teachers, and its step's cost in teacher steps",
    )
    parser.add_argument(
        "--cache-images",
        type=int,
        default=200,
        help="images whose logit cache --distill builds and times (default 200)",
    )
    parser.add_argument(
        "--json", help="also write the numbers and the machine's details to this file"
    )
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    cases = args.cases or ["lenet5", "preresnet20"] + (
        ["preresnet56"] if device.type == "cuda" else []
    )
    workers = cores() if args.workers is None else args.workers
    # the machine, the commit and the library versions (with `compiled` when the kdrepro side ran
    # under torch.compile)
    info = {**store.provenance(device), **fingerprint()}
    print(
        f"{info['device_name']}, torch {info['torch']}, {info['threads']} threads, batch "
        f"{args.batch_size}, {workers} DataLoader workers, median of {args.repeats}"
        + (", compiled" if compiling() else "")
    )
    gpu = device.type == "cuda"  # seconds per 50k-image epoch have a target on the GPU only
    print(
        f"{'case':<12} {'device':<6} {'kdrepro img/s':>13} {'conv. img/s':>11} {'ratio':>6} "
        f"{'target':>12} " + (f"{'s/epoch':>7} {'conv.':>6} " if gpu else "") + "met?"
    )
    rows = []
    for name in cases:
        row = measure(
            name,
            device,
            args.images,
            args.repeats,
            args.batch_size,
            args.warmup,
            workers,
            args.pack,
            args.distill,
            args.cache_images,
        )
        rows.append(row)
        epoch_target = CASES[name].epoch_target if gpu else None
        target = f">={row['target']:g}x" + (f" <={epoch_target:g}s" if epoch_target else "")
        print(
            f"{name:<12} {device.type:<6} {row['kdrepro']:>13.0f} {row['conventional']:>11.0f} "
            f"{row['ratio']:>5.2f}x {target:>12} "
            + (
                f"{row['epoch_seconds']:>7.2f} {row['conventional_epoch_seconds']:>6.1f} "
                if gpu
                else ""
            )
            + ("yes" if row["met"] else "NO")
            + (f"  packed x{args.pack}: {row['packed']:.0f} model-img/s" if args.pack > 1 else "")
            + (
                f"  student of {args.distill}{' (cached)' if row.get('cached_teacher') else ''}: "
                f"{row['distilled']:.0f} img/s, {row['distill_cost']:.2f} teacher steps (target "
                f"<={DISTILL_TARGET:g})"
                if args.distill
                else ""
            ),
            flush=True,
        )
    if args.json:
        atomic_write(
            Path(args.json),
            json.dumps(
                {
                    "provenance": info,
                    "batch_size": args.batch_size,
                    "warmup": args.warmup,
                    "repeats": args.repeats,
                    "workers": workers,
                    "results": rows,
                },
                indent=2,
            ).encode(),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
