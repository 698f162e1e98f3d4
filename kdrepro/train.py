"""Teacher training and distillation: one plain loop over device-resident uint8 data (the paper's
§3.1 and App. A.3).

A run is a number of optimizer steps (`RunConfig.steps`), every one on a full batch: batches are
drawn from a stream of per-epoch permutations that runs on across epoch boundaries, so students of
one comparison take exactly the same number of steps whatever the size of their distillation set.
The learning rate follows a cosine from `lr` to `lr_min` over those steps, set before each step.
Each batch is augmented on the device and, when distilling, the teacher (in eval mode) labels that
very batch, or, when a run passes over its set more often than an image has crop-and-flip views, the
labels of every view are computed once and looked up (`logit_cache`).

A checkpoint (the `CHECKPOINT` keys) is written every `KDREPRO_CKPT_SECONDS` (default 60) seconds
and once at the end, so a run killed at any instant resumes where it stopped and ends with the same
numbers.
"""

import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from tqdm import tqdm

from . import augment, data, logit_cache, metrics, models, settings, surface
from .config import RunConfig, StudentConfig
from .errors import ConfigError, KdreproError
from .files import CorruptFile, load_tensors, save_tensors
from .losses import kd_loss
from .paths import cache_dir

# The version of the training numerics. Bump it with any change that alters a trained number (data
# order, augmentation, schedule, loss, model init, metrics); stored runs of another version are
# refused as stale. tests/test_numerics.py pins a tiny run's numbers to it.
NUMERICS = 2
CHECKPOINT = (
    "fingerprint",
    "model",
    "optimizer",
    "augment_rng",
    "torch_rng",
    "cuda_rng",
    "step",
    "curves",
    "window",
    "elapsed",
)
CKA_IMAGES = 1_000  # test images for a one-teacher student's stage CKA (an n x n kernel per stage)
# distillation images (a seeded random subset) for Fig. 6c: n * n grid points + surface.PATH
SURFACE_IMAGES = 500


class TrainingFailed(KdreproError, RuntimeError):
    """The loss diverged, or a student learned nothing; the message says which lr to try."""


def fingerprint() -> dict:
    """What determines a run's numbers besides its config: the numerics version, the library
    versions, and `compiled` when the step runs under torch.compile (absent otherwise, so eager
    fingerprints are as they were). A checkpoint of another fingerprint is not resumed: a run is
    compiled or eager from its first step to its last."""
    # plain str: torch.__version__ is a str subclass that a weights_only checkpoint load refuses
    return {
        "numerics": NUMERICS,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "numpy": str(np.__version__),
        **({"compiled": True} if compiling() else {}),
    }


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device; 'auto' picks CUDA when present. Asking for CUDA without a GPU is a one-line
    error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device={str(device)!r}: expected 'cpu', 'cuda' or 'auto'") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={str(device)!r}: expected 'cpu', 'cuda' or 'auto'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={str(device)!r}: no CUDA GPU is available here; use device='cpu' (or 'auto')"
        )
    return device


def training_set(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's training (or distillation) images and labels, on the CPU, as uint8 / int64.

    Out-of-distribution images (a student's `ood_dataset`) are resized and given the run's channel
    count; their label is -1: they have none."""
    x, y = data.load(cfg.dataset, "train")
    idx = data.subset(y, cfg.train_size, cfg.train_part, cfg.subset_seed)
    x, y = x[idx], y[idx]
    if getattr(cfg, "ood_dataset", None):
        ox, oy = data.load(cfg.ood_dataset, "train")
        ox = ox[data.subset(oy, cfg.ood_size, "all", cfg.subset_seed)].float()
        ox = ox.mean(1, keepdim=True) if x.shape[1] == 1 else ox.expand(-1, x.shape[1], -1, -1)
        ox = F.interpolate(
            ox, size=x.shape[-2:], mode="bilinear", antialias=True, align_corners=False
        )
        x = torch.cat([x, ox.round().clamp(0, 255).to(torch.uint8)])
        y = torch.cat([y, torch.full((len(ox),), -1, dtype=y.dtype)])
    return x, y


def test_set(cfg: RunConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split on the device, or its stratified `test_size` subset (smoke runs)."""
    x, y = data.load(cfg.dataset, "test")
    if cfg.test_size is not None:
        keep = data.subset(y, cfg.test_size, "all", 0)
        x, y = x[keep], y[keep]
    return x.to(device), y.to(device)


def new_model(cfg: RunConfig) -> nn.Module:
    """The run's network, freshly initialized from its init seed (on the CPU)."""
    channels, size, _ = data.SHAPES[cfg.dataset]
    torch.manual_seed(cfg.init_seed_used)
    return models.build(
        cfg.model,
        data.NUM_CLASSES[cfg.dataset],
        in_channels=channels,
        norm=cfg.norm,
        width=cfg.width,
        image_size=size,
    )


# torch.compile options per device when KDREPRO_COMPILE=1: CUDA graphs on a GPU, where a small
# network's step is bound by kernel launches (the optimizer step stays outside the graph); inductor
# on the CPU.
COMPILE = {"cuda": {"mode": "reduce-overhead"}, "cpu": {}}


def compiling() -> bool:
    return settings.compile_steps()


def compiled(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` under torch.compile when KDREPRO_COMPILE=1, else itself. Every step is a full batch,
    so it compiles once per network, batch shape and mode (train, or eval for a teacher);
    evaluations run the module uncompiled."""
    if not compiling():
        return module
    # a sweep compiles many networks and shapes in one process: past the default limit of 8 per
    # function, dynamo would fall back to eager without a word
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    return torch.compile(module, dynamic=False, **COMPILE[device.type])


def step_begins(device: torch.device) -> None:
    """Before a training step's first compiled call: under CUDA graphs, the previous step's outputs
    may be overwritten from here on."""
    if compiling() and device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()


def autocast(device: torch.device, enabled: bool = True):
    # bf16 on GPUs; on the CPU full precision (bf16 matmuls are slow on 2-core machines and change
    # results).
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


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
    second = batch_indices(
        sizes[1], batch_size // 2, seed + 500_009, start
    )  # another permutation stream
    for a, b in zip(first, second):
        yield torch.cat([a, b + sizes[0]])


def run_indices(cfg: RunConfig, n: int, start: int = 0) -> Iterator[torch.Tensor]:
    """The run's batches of indices into its training set of `n` examples, from step `start` on."""
    if cfg.train_part == "D0+D1":
        n0 = cfg.train_size or data.part_size(cfg.dataset, "D0")
        return union_indices((n0, n - n0), cfg.batch_size, cfg.seed, start)
    return batch_indices(n, cfg.batch_size, cfg.seed, start)


def batches(
    x: torch.Tensor, indices: Iterator[torch.Tensor], aug: augment.Augment, gen: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Endless (indices, augmented float images, view ids or None) batches of device-resident uint8
    images `x`; `gen` draws the augmentations."""
    for idx in indices:
        idx = idx.to(x.device)
        xb, views = aug(x[idx], gen)
        yield idx, xb.contiguous(memory_format=torch.channels_last), views


def cosine_lr(step: int, steps: int, lr: float, lr_min: float) -> float:
    """The learning rate before optimizer step `step` of `steps`: a cosine from lr (step 0) to
    lr_min (the end)."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * step / steps)) / 2


def lr_at(cfg: RunConfig, lr: float, step: int) -> float:
    """The run's learning rate before optimizer step `step`, starting from `lr` (the config's, or
    the scaled one of a start near the teacher): a cosine down to lr_min, or to lr itself when that
    is lower."""
    return cosine_lr(step, cfg.steps, lr, min(cfg.lr_min, lr))


def eval_steps(steps: int, evals: int) -> set[int]:
    """Steps after which the test set is evaluated: `evals` evenly spaced, the last one included."""
    return {max(1, round(k * steps / evals)) for k in range(1, evals + 1)}


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
        xb = data.unitcube(x[i : i + batch_size].to(device)).contiguous(
            memory_format=torch.channels_last
        )
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
        model(
            data.unitcube(x[i : i + batch_size].to(device)).contiguous(
                memory_format=torch.channels_last
            )
        )
    for bn in bns:
        bn.momentum = 0.1


def optimizer(cfg: RunConfig, params, lr: float) -> torch.optim.Optimizer:
    """The run's optimizer (SGD with Nesterov momentum, or Adam) at learning rate lr."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )


def checkpoint_path(cfg: RunConfig) -> os.PathLike:
    return cache_dir("checkpoints") / f"{cfg.run_id}.pt"


def _restore(cfg: RunConfig, state: dict) -> None:
    """Load the saved training state of `cfg` (the CHECKPOINT keys) into `state`, if there is one. A
    checkpoint that fails its digest, lacks a key or was written by other training numerics or
    libraries (`fingerprint`: its steps so far would not be this code's) is discarded with a
    warning, and the run restarts."""
    path = checkpoint_path(cfg)
    if not path.exists():
        return
    try:
        saved, _ = load_tensors(path)
        if set(saved) != set(CHECKPOINT):
            raise CorruptFile(f"{path}: keys {sorted(saved)} are not {sorted(CHECKPOINT)}")
        if saved["fingerprint"] != fingerprint():
            raise CorruptFile(
                f"{path}: written by {saved['fingerprint']}, not by this code ({fingerprint()})"
            )
    except CorruptFile as e:
        tqdm.write(f"warning: {e}; discarding it, {cfg.run_id} restarts from step 0")
        path.unlink(missing_ok=True)
        return
    for key in CHECKPOINT:
        if key in ("model", "optimizer"):
            state[key].load_state_dict(saved[key])
        elif key == "augment_rng":
            state[key].set_state(saved[key])
        elif key == "torch_rng":
            torch.set_rng_state(saved[key])
        elif key == "cuda_rng":  # dropout masks on a GPU (VGG-16) come from the CUDA generators
            if saved[key] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(saved[key])
        elif key != "fingerprint":
            state[key] = saved[key]


def _save(cfg: RunConfig, state: dict) -> None:
    live = {
        "fingerprint": fingerprint(),
        "model": state["model"].state_dict(),
        "optimizer": state["optimizer"].state_dict(),
        "augment_rng": state["augment_rng"].get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    save_tensors(
        checkpoint_path(cfg), {key: live[key] if key in live else state[key] for key in CHECKPOINT}
    )


@dataclass
class Trained:
    """What a finished run hands to `runs`: its test curves and final metrics, its teacher's test
    metrics (when distilling), the final weights (on the CPU), the wall time across resumes (a
    packed run's share of its pack's), when the config asks for one, Fig. 6c's loss plane, how many
    runs trained packed together (`packed`), whether the teacher's labels came from `logit_cache`,
    and a student's deviations from its teacher (`metrics.deviations` on its test and un-augmented
    train images)."""

    final: dict
    curves: list[dict]
    teacher_test: dict | None
    weights: dict
    seconds: float
    surface: dict | None = None
    packed: int = 1
    cached_teacher: bool = False
    deviations: dict | None = None


def fit(
    cfg: RunConfig,
    device: torch.device,
    teacher: nn.Module | None = None,
    control: nn.Module | None = None,
    progress: bool = True,
) -> Trained:
    """Train (teacher) or distill (student) the run `cfg`, resuming from its checkpoint if one
    exists."""
    distill = isinstance(cfg, StudentConfig)
    if distill != (teacher is not None):
        raise ValueError(f"{cfg.describe()}: a student run needs a teacher, a teacher run none")
    train_x, train_y = (t.to(device) for t in training_set(cfg))
    test_x, test_y = test_set(cfg, device)
    model = new_model(cfg)
    model = model.to(device, memory_format=torch.channels_last)
    lr, teacher_test, control_test = cfg.lr, None, None
    if distill:
        # labels come from the teacher's eval-mode predictions, always: the official code calls
        # `eval_epoch(teacher, ...)` before distilling and nothing switches it back
        teacher.eval()
        teacher_test = predict(teacher, test_x, device)
        control_test = predict(control, test_x, device) if control is not None else None
        if cfg.init == "interpolate":
            interpolate_(model, teacher.members[0], cfg.init_lambda)
            recompute_batchnorm(model, train_x, device)
            lr = max(cfg.lr * (1 - cfg.init_lambda), 1e-6) if cfg.init_lr_scale else lr
    # rebuilt the same way on resume, so the loss plane's initial point is right after a kill too
    start = (
        {k: v.detach().clone() for k, v in model.state_dict().items()}
        if getattr(cfg, "surface", 0)
        else None
    )
    state = {
        "model": model,
        "optimizer": optimizer(cfg, model.parameters(), lr),
        "augment_rng": torch.Generator().manual_seed(cfg.seed),
        "step": 0,
        "curves": [],
        "elapsed": 0.0,
        "window": [0.0, 0, 0],
    }  # train loss sum, hits and examples since the last evaluation
    _restore(cfg, state)
    aug, evals = augment.make(cfg.augment, cfg.crop_pad), eval_steps(cfg.steps, cfg.evals)
    stream = batches(
        train_x, run_indices(cfg, len(train_x), state["step"]), aug, state["augment_rng"]
    )
    t0, last_save = time.perf_counter() - state["elapsed"], time.perf_counter()
    forward, labeller, cache = (
        compiled(model, device),
        compiled(teacher, device) if distill else None,
        None,
    )
    if distill and logit_cache.pays(
        cfg
    ):  # after t0: its cost (when it is built here) is part of the wall time
        cache = logit_cache.load_or_build(
            lambda xb: label_batch(labeller, xb, device),
            teacher,
            train_x,
            cfg.augment,
            cfg.crop_pad,
            device,
            fingerprint(),
        )
    save_every = settings.checkpoint_seconds()
    loss_sum = torch.tensor(state["window"][0], dtype=torch.float32, device=device)
    hits, seen = torch.tensor(int(state["window"][1]), device=device), state["window"][2]
    bar = tqdm(
        total=cfg.steps,
        initial=state["step"],
        desc=f"{cfg.kind} {cfg.run_id}",
        leave=False,
        unit="step",
        disable=not progress or not sys.stderr.isatty(),
    )  # per-step bars only on a terminal
    for step in range(state["step"], cfg.steps):
        idx, xb, views = next(stream)

        def loss_of(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if not distill:
                return F.cross_entropy(out, train_y[idx]).reshape(1), train_y[idx]
            target = (
                label_batch(labeller, xb, device) if cache is None else cache[idx, views.to(device)]
            )
            alpha = cfg.alpha_at(step)  # 1 before a late switch: the true labels alone
            loss = kd_loss(out, target, cfg.temperature, alpha, train_y[idx] if alpha > 0 else None)
            return loss.reshape(1), target.argmax(1)

        losses, out, target = take_step(
            model, forward, state["optimizer"], lr_at(cfg, lr, step), xb, device, loss_of
        )
        loss_sum += losses[0] * len(idx)
        hits += (out.argmax(-1) == target).sum()
        seen += len(idx)
        state["step"] = step + 1
        if state["step"] in evals:
            row = evaluation(
                cfg,
                state["step"],
                len(train_x),
                loss_sum.item() / seen,
                hits.item() / seen,
                evaluate(predict(model, test_x, device), test_y, teacher_test, control_test),
            )
            state["curves"].append(row)
            loss_sum.zero_()
            hits.zero_()
            seen = 0
            bar.set_postfix(
                {k: f"{row[k]:.3f}" for k in ("train_loss", "accuracy", "agreement") if k in row}
            )
        bar.update()
        if state["step"] == cfg.steps or time.perf_counter() - last_save >= save_every:
            state.update(
                elapsed=time.perf_counter() - t0, window=[loss_sum.item(), hits.item(), seen]
            )
            _save(cfg, state)
            last_save = time.perf_counter()
    bar.close()
    final, plane, deviations = dict(state["curves"][-1]), None, None
    if distill:
        plane, deviations = finish_student(
            cfg, model, teacher, (train_x, train_y), (test_x, test_y), device, final, start
        )
    else:
        finish_teacher(model, train_x, train_y, device, final)
    return Trained(
        final,
        state["curves"],
        evaluate(teacher_test, test_y) if distill else None,
        {k: v.detach().cpu() for k, v in model.state_dict().items()},
        round(time.perf_counter() - t0, 2),
        plane,
        cached_teacher=cache is not None,
        deviations=deviations,
    )


def take_step(
    model: nn.Module,
    forward: nn.Module,
    opt: torch.optim.Optimizer,
    lr: float,
    xb: torch.Tensor,
    device: torch.device,
    loss_of,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step of `model` (through `forward`, its compiled self or itself) on the batch
    xb, the step of a plain run and of a pack of G networks alike: `loss_of(logits)` gives the
    per-network losses [G] (G = 1 for a plain run) and the targets that train hits are counted
    against; the step is taken on their sum, which steps each packed network on its own loss.
    Returns the detached losses, the float32 logits and the targets."""
    for group in opt.param_groups:
        group["lr"] = lr
    model.train()
    step_begins(device)
    with autocast(device):
        out = forward(xb).float()
        losses, target = loss_of(out)
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()
    opt.step()
    return losses.detach(), out, target


@torch.no_grad()
def label_batch(teacher: nn.Module, xb: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The eval-mode teacher's float32 logits of a training batch, as the loss reads them (bf16
    autocast on a GPU)."""
    with autocast(device):
        return teacher(xb).float()


def finish_teacher(
    model: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    device: torch.device,
    final: dict,
) -> None:
    """After a teacher's last step: add to `final` how well it fits its training set, in eval mode
    on the un-augmented images (`clean_train_accuracy`); the running `train_accuracy` of the curves
    is measured in train mode on augmented batches and lags behind it."""
    hits = predict(model, train_x, device).argmax(1) == train_y.to(device)
    final["clean_train_accuracy"] = hits.float().mean().item()


def finish_student(
    cfg: StudentConfig,
    model: nn.Module,
    teacher: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    final: dict,
    start: dict | None = None,
) -> tuple[dict | None, dict]:
    """After a student's last step: fail if it learned nothing; add to `final` its train agreement
    as the paper's Fig. 5 (right) measures it (`fresh_pass_agreement`) and a one-teacher student's
    stage CKA and train KL; return Fig. 6c's loss plane (from the initial state `start`) when the
    config asks for one, and the student's deviations from its teacher on the test and the
    (un-augmented) distillation images."""
    _check_learned(cfg, final)
    (train_x, train_y), (test_x, test_y) = train, test
    final["eval_train_agreement"] = fresh_pass_agreement(cfg, model, teacher, train_x, device)
    on = {"test": (test_x, test_y), "train": (train_x, train_y)}
    deviations = {
        split: metrics.deviations(
            predict(teacher, x, device, bf16=False), predict(model, x, device, bf16=False), y
        )
        for split, (x, y) in on.items()
    }
    if cfg.compares_stages:
        final.update(stage_cka(teacher.members[0], model, test_x[:CKA_IMAGES], device))
        # tau = 1 KL on the un-augmented distillation images: Fig. 6b's "train KL"
        final["train_kl"] = metrics.predictive_kl(
            predict(teacher, train_x, device, bf16=False),
            predict(model, train_x, device, bf16=False),
        )
    if start is None:
        return None, deviations
    pick = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:SURFACE_IMAGES]
    plane = surface.plane(
        new_model(cfg).to(device, memory_format=torch.channels_last),
        teacher.members[0],
        start,
        model.state_dict(),
        train_x[pick.to(train_x.device)],
        cfg.temperature,
        cfg.surface,
        device,
    )
    final["loss_barrier"] = plane["barrier"]
    return plane, deviations


FRESH_PASS_SEED = 7_777_777  # the fresh pass draws its augmentations from a generator of its own


@torch.no_grad()
def fresh_pass_agreement(
    cfg: StudentConfig,
    model: nn.Module,
    teacher: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    batch_size: int = 500,
) -> float:
    """Top-1 agreement of student and teacher on one fresh augmented pass over the distillation
    images x, both in eval mode: each image once, augmented by the run's policy from a generator
    seeded apart from training's. The paper's Fig. 5 (right) evaluates its saved students so; the
    curves' running `train_agreement` is measured in train mode on the training batches instead."""
    aug, gen = (
        augment.make(cfg.augment, cfg.crop_pad),
        torch.Generator().manual_seed(FRESH_PASS_SEED + cfg.seed),
    )
    model.eval()
    teacher.eval()
    hits = 0
    for i in range(0, len(x), batch_size):
        xb, _ = aug(x[i : i + batch_size].to(device), gen)
        xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            hits += (model(xb).argmax(1) == teacher(xb).argmax(1)).sum().item()
    return hits / len(x)


@torch.no_grad()
def stage_cka(
    teacher: nn.Module, student: nn.Module, x: torch.Tensor, device: torch.device
) -> dict:
    """RBF CKA between teacher and student at the output of each stage (features averaged over H and
    W), on un-augmented images x, both in eval mode: Table 1's representational similarity, for
    one-teacher students."""
    teacher.eval()
    student.eval()
    xb = data.unitcube(x.to(device)).contiguous(memory_format=torch.channels_last)
    pairs = zip(teacher.stages(xb), student.stages(xb), strict=True)
    return {
        f"cka_stage{k}": metrics.cka(t.float(), s.float(), "rbf")
        for k, (t, s) in enumerate(pairs, 1)
    }


def evaluation(
    cfg: RunConfig, step: int, n: int, train_loss: float, train_hits: float, test: dict
) -> dict:
    """A row of the curves: train loss and agreement (or accuracy) averaged over the steps since the
    last evaluation, in train mode on the augmented batches (the paper's online `train_ts_agree`),
    then test metrics."""
    if not math.isfinite(train_loss):
        raise TrainingFailed(
            f"{cfg.describe()}: train loss is {train_loss} at step {step}; lower lr (now {cfg.lr})"
        )
    key = "train_agreement" if isinstance(cfg, StudentConfig) else "train_accuracy"
    return {
        "step": step,
        "epoch": step * cfg.batch_size / n,
        "train_loss": train_loss,
        key: train_hits,
        **test,
    }


def _check_learned(cfg: StudentConfig, final: dict) -> None:
    """Fail loudly when a student sat at the uniform prediction, whose loss is alpha ln K + (1 -
    alpha) tau^2 ln K (a cross-entropy to labels and to the teacher's tempered outputs): the lr is
    too large for tau."""
    k = data.NUM_CLASSES[cfg.dataset]
    uniform = (cfg.alpha + (1 - cfg.alpha) * cfg.temperature**2) * math.log(k)
    if abs(final["train_loss"] - uniform) < 1e-3 * uniform and final["agreement"] < 2.0 / k:
        raise TrainingFailed(
            f"{cfg.describe()}: the student's loss stayed at {uniform:.2f}, a uniform output's; "
            f"lower lr (now {cfg.lr}), e.g. to lr / tau"
        )
