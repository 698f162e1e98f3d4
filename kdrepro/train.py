"""Teacher training and distillation: one plain loop over device-resident uint8 data (the paper's
§3.1 and App. A.3).

A run is a number of optimizer steps (`RunConfig.steps`), every one on a full batch: batches are
drawn from a stream of per-epoch permutations that runs on across epoch boundaries, so students of
one comparison take exactly the same number of steps whatever the size of their distillation set
(`inputs`). The learning rate follows a cosine from `lr` to `lr_min` over those steps, set before
each step (`schedule`). Each batch is augmented on the device and, when distilling, the teacher (in
eval mode) labels that very batch, or, when a run passes over its set more often than an image has
crop-and-flip views, the labels of every view are computed once and looked up (`logit_cache`).

A checkpoint is written every `KDREPRO_CKPT_SECONDS` (default 60) seconds and once at the end
(`checkpoint`); what is measured after the last step is in `finish`. `take_step` is the one
optimizer step of a plain run and of a pack of networks (`packed`) alike.
"""

import math
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import augment, checkpoint, data, logit_cache, settings
from .checkpoint import NUMERICS, fingerprint
from .config import RunConfig, StudentConfig
from .devices import autocast, compiled, step_begins
from .errors import TrainingFailed
from .finish import finish_student, finish_teacher
from .inputs import (
    batches,
    interpolate_,
    new_model,
    recompute_batchnorm,
    run_indices,
    test_set,
    training_set,
)
from .losses import kd_loss
from .predictions import evaluate, label_batch, predict
from .schedule import eval_steps, lr_at, optimizer

__all__ = ["NUMERICS", "Trained", "evaluation", "fit", "take_step"]


@dataclass
class Trained:
    """What a finished run hands to `runs`: its test curves and final metrics, its teacher's test
    metrics (when distilling), the final weights (on the CPU), the wall time and the process's CPU
    time across resumes (a packed run's shares of its pack's; CPU time, unlike wall time, does not
    grow while the process is stopped), when the config asks for one, Fig. 6c's loss plane, how
    many runs trained packed together (`packed`), whether the teacher's labels came from
    `logit_cache`, and a student's deviations from its teacher (`metrics.deviations` on its test
    and un-augmented train images)."""

    final: dict
    curves: list[dict]
    teacher_test: dict | None
    weights: dict
    seconds: float
    cpu_seconds: float
    surface: dict | None = None
    packed: int = 1
    cached_teacher: bool = False
    deviations: dict | None = None


def progress_line(
    cfg: RunConfig, step: int, since: tuple[int, float], row: dict, now: float | None = None
) -> str:
    """One line for a log at an evaluation: how far the run is, the time left at this process's
    rate since (step, perf_counter) `since` (its start or resume), and the evaluation's numbers."""
    done = step - since[0]
    spent = (time.perf_counter() if now is None else now) - since[1]
    left = spent / done * (cfg.steps - step) if done else float("nan")
    shown = ", ".join(f"{k} {row[k]:.3f}" for k in ("accuracy", "agreement") if k in row)
    return (
        f"{cfg.kind} {cfg.run_id}: step {step:,} of {cfg.steps:,} "
        f"({step / cfg.steps * 100:.0f} %), {spent / 60:.1f} min since it started here, "
        f"about {left / 60:.1f} min left; {shown}"
    )


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
    train_x, train_y = training_set(cfg)
    if cfg.dataset not in data.MAPPED:  # a memory-mapped set stays on the CPU: `batches` copies
        train_x = train_x.to(device)
    train_y = train_y.to(device)
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
        "cpu": 0.0,
        "window": [0.0, 0, 0],
    }  # train loss sum, hits and examples since the last evaluation
    checkpoint.restore(cfg, state)
    aug, evals = augment.make(cfg.augment, cfg.crop_pad), eval_steps(cfg.steps, cfg.evals)
    stream = batches(
        train_x, run_indices(cfg, len(train_x), state["step"]), aug, state["augment_rng"], device
    )
    t0, last_save = time.perf_counter() - state["elapsed"], time.perf_counter()
    c0 = time.process_time() - state["cpu"]
    forward, labeller, cache = (
        compiled(model, device),
        compiled(teacher, device) if distill else None,
        None,
    )
    # after t0: the cache's cost (when it is built here) is part of the wall time
    if distill and logit_cache.pays(cfg):
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
    )  # per-step bars only on a terminal; a log gets a line per evaluation (`progress_line`)
    lines, since = progress and not sys.stderr.isatty(), (state["step"], time.perf_counter())
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
            if lines:
                tqdm.write(progress_line(cfg, state["step"], since, row), file=sys.stderr)
        bar.update()
        if state["step"] == cfg.steps or time.perf_counter() - last_save >= save_every:
            state.update(
                elapsed=time.perf_counter() - t0,
                cpu=time.process_time() - c0,
                window=[loss_sum.item(), hits.item(), seen],
            )
            checkpoint.save(cfg, state)
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
        round(time.process_time() - c0, 2),
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
