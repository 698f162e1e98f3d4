"""Teacher training and distillation: one plain loop over device-resident uint8 data (SPEC §1.3-1.6).

Every step draws a batch, augments it on the device, and, when distilling, lets the teacher (in eval mode)
label that very batch: teacher outputs of augmented views are never cached. The cosine schedule steps once per
epoch. A checkpoint (weights, optimizer, schedule, RNG states, curves) is written every `KDREPRO_CKPT_SECONDS`
(default 60) seconds, so a killed run resumes where it stopped and ends with the same numbers.
"""

import math
import os
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import augment, data, metrics, models, store
from .config import RunConfig, StudentConfig
from .losses import kd_loss
from .paths import cache_dir


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device; 'auto' picks CUDA when present. Asking for CUDA without a GPU is a one-line error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r}: no CUDA GPU is available here; use device='cpu' (or 'auto')")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device={str(device)!r}: expected 'cpu', 'cuda' or 'auto'")
    return device


def training_set(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's training (or distillation) images and labels, on the CPU, as uint8 / int64.

    Out-of-distribution images (a student's `ood_dataset`) are resized and given the run's channel count; their
    label is -1: they have none."""
    x, y = data.load(cfg.dataset, "train")
    idx = data.subset(y, cfg.train_size, cfg.train_part, cfg.subset_seed)
    x, y = x[idx], y[idx]
    if getattr(cfg, "ood_dataset", None):
        ox, oy = data.load(cfg.ood_dataset, "train")
        ox = ox[data.subset(oy, cfg.ood_size, "all", cfg.subset_seed)].float()
        ox = ox.mean(1, keepdim=True) if x.shape[1] == 1 else ox.expand(-1, x.shape[1], -1, -1)
        ox = F.interpolate(ox, size=x.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
        x = torch.cat([x, ox.round().clamp(0, 255).to(torch.uint8)])
        y = torch.cat([y, torch.full((len(ox),), -1, dtype=y.dtype)])
    return x, y


def new_model(cfg: RunConfig, x: torch.Tensor) -> nn.Module:
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model, data.NUM_CLASSES[cfg.dataset], in_channels=x.shape[1], norm=cfg.norm,
                         width=cfg.width, image_size=x.shape[-1])
    return model


def autocast(device: torch.device):
    # bf16 on GPUs; on the CPU full precision (bf16 matmuls are slow on 2-core machines and change results).
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def epoch_batches(x: torch.Tensor, batch_size: int, aug, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of shuffled batches of device-resident uint8 images: (indices, augmented float images)."""
    perm = torch.randperm(len(x), generator=gen).to(x.device)
    for i in range(0, len(x), batch_size):
        idx = perm[i:i + batch_size]
        yield idx, aug(x[idx], gen).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 1000) -> torch.Tensor:
    """Float32 logits of `model` in eval mode on un-augmented uint8 images `x` (any device)."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = data.unitcube(x[i:i + batch_size].to(device)).contiguous(memory_format=torch.channels_last)
        with autocast(device):
            out.append(model(xb).float())
    return torch.cat(out)


def evaluate(model: nn.Module, test_x, test_y, device, teacher_logits=None, control_logits=None) -> dict:
    """Test metrics of `model`; fidelity to the teacher (and to an independent teacher) when logits are given."""
    logits = predict(model, test_x, device)
    meter = metrics.Meter()
    meter.update(logits, test_y.to(device), teacher_logits)
    result = meter.compute()
    if control_logits is not None:
        result["control_agreement"] = metrics.agreement(control_logits, logits)
        result["control_kl"] = metrics.predictive_kl(control_logits, logits)
    return result


def interpolate_(student: nn.Module, teacher: nn.Module, lam: float) -> None:
    """theta_s <- lam * theta_t + (1 - lam) * theta_s for every parameter (SPEC Fig. 6b); lam = 1 copies exactly."""
    with torch.no_grad():
        for ps, pt in zip(student.parameters(), teacher.parameters(), strict=True):
            ps.copy_(pt if lam == 1 else lam * pt + (1 - lam) * ps)


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, x: torch.Tensor, device, batch_size: int = 500) -> None:
    """Re-estimate BatchNorm running statistics on un-augmented images (a cumulative average over all of x)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for i in range(0, len(x), batch_size):
        model(data.unitcube(x[i:i + batch_size].to(device)).contiguous(memory_format=torch.channels_last))
    for bn in bns:
        bn.momentum = 0.1


def eval_epochs(epochs: int, evals: int) -> set[int]:
    """Epochs (1-based) after which the test set is evaluated: `evals` evenly spaced, the last one included."""
    return {max(1, round(k * epochs / evals)) for k in range(1, evals + 1)}


def _optimizer(cfg: RunConfig, params, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)


def fit(cfg: RunConfig, device: torch.device, teacher: nn.Module | None = None, control: nn.Module | None = None,
        progress: bool = True) -> tuple[dict, dict]:
    """Train (teacher) or distill (student) the run `cfg`; return (result dict, final state_dict on the CPU)."""
    distill = isinstance(cfg, StudentConfig)
    if distill != (teacher is not None):
        raise ValueError(f"{cfg.describe()}: a student run needs a teacher, a teacher run none")
    train_x, train_y = (t.to(device) for t in training_set(cfg))
    test_x, test_y = data.load(cfg.dataset, "test")
    if cfg.test_size is not None:
        keep = data.subset(test_y, cfg.test_size, "all", 0)
        test_x, test_y = test_x[keep], test_y[keep]
    test_x, test_y = test_x.to(device), test_y.to(device)
    model = new_model(cfg, train_x).to(device, memory_format=torch.channels_last)
    lr = cfg.lr
    teacher_test = control_test = None
    if distill:
        teacher.eval()  # labels come from the teacher's eval-mode predictions, always (SPEC §6 item 13)
        teacher_test = predict(teacher, test_x, device)
        control_test = predict(control, test_x, device) if control is not None else None
        if cfg.init == "interpolate":
            interpolate_(model, teacher.members[0], cfg.init_lambda)
            recompute_batchnorm(model, train_x, device)
            if cfg.init_lr_scale:
                lr = max(cfg.lr * (1 - cfg.init_lambda), 1e-6)
    optimizer = _optimizer(cfg, model.parameters(), lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr_min)
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order and augmentation; checkpointed with the run
    aug = augment.make(cfg.augment, cfg.crop_pad)
    temperature = cfg.temperature if distill else 1.0
    ckpt_path = cache_dir("checkpoints") / f"{cfg.run_id}.pt"
    ckpt_every = float(os.environ.get("KDREPRO_CKPT_SECONDS", 60))
    start, curves, elapsed = 0, [], 0.0
    if (state := store.load_checkpoint(ckpt_path)) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start, curves, elapsed = state["epoch"], state["curves"], state["elapsed"]
    evals = eval_epochs(cfg.epochs, cfg.evals)
    n, t0, last_save = len(train_x), time.perf_counter() - elapsed, time.perf_counter()
    bar = tqdm(range(start, cfg.epochs), desc=f"{cfg.kind} {cfg.run_id}", disable=not progress, leave=False,
               initial=start, total=cfg.epochs, unit="ep")
    for epoch in bar:
        model.train()
        loss_sum, hits = torch.zeros((), device=device), torch.zeros((), device=device)
        for idx, xb in epoch_batches(train_x, cfg.batch_size, aug, gen):
            with autocast(device):
                out = model(xb).float()
                if distill:
                    with torch.no_grad():
                        target = teacher(xb).float()
                    loss = kd_loss(out, target, temperature, cfg.alpha, train_y[idx] if cfg.alpha > 0 else None)
                    hits += (out.argmax(1) == target.argmax(1)).sum()
                else:
                    loss = F.cross_entropy(out, train_y[idx])
                    hits += (out.argmax(1) == train_y[idx]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
        schedule.step()
        train_loss = loss_sum.item() / n
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"{cfg.describe()}: train loss is {train_loss} at epoch {epoch + 1}; "
                                     f"lower lr (now {cfg.lr})")
        if epoch + 1 in evals:
            row = {"epoch": epoch + 1, "train_loss": train_loss,
                   ("train_agreement" if distill else "train_accuracy"): hits.item() / n,
                   **evaluate(model, test_x, test_y, device, teacher_test, control_test)}
            curves.append(row)
            bar.set_postfix({k: f"{row[k]:.3f}" for k in ("train_loss", "accuracy", "agreement") if k in row})
        if epoch + 1 < cfg.epochs and time.perf_counter() - last_save >= ckpt_every:
            store.save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch + 1,
                "curves": curves, "elapsed": time.perf_counter() - t0})
            last_save = time.perf_counter()
    bar.close()
    final = dict(curves[-1])
    if distill:
        _check_learned(cfg, final, data.NUM_CLASSES[cfg.dataset])
    result = {"run_id": cfg.run_id, "kind": cfg.kind, "description": cfg.describe(), "config": cfg.to_dict(),
              "final": final, "curves": curves, "train_examples": n,
              "provenance": {**store.provenance(device), "wall_seconds": round(time.perf_counter() - t0, 2),
                             "seed": cfg.seed}}
    if distill:
        result["teacher_test"] = evaluate(teacher, test_x, test_y, device)
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    for path in (ckpt_path, ckpt_path.with_suffix(".sha256")):
        path.unlink(missing_ok=True)
    return result, weights


def _check_learned(cfg: StudentConfig, final: dict, num_classes: int) -> None:
    """Fail loudly when a student sat at the uniform prediction (loss tau^2 ln K): the lr is too large for tau."""
    uniform = cfg.temperature ** 2 * math.log(num_classes)
    if abs(final["train_loss"] - uniform) < 1e-3 * uniform and final["agreement"] < 2.0 / num_classes:
        raise RuntimeError(f"{cfg.describe()}: the student's loss stayed at tau^2 ln K = {uniform:.2f} (uniform "
                           f"output); lower lr (now {cfg.lr}), e.g. to lr / tau")
