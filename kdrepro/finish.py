"""What is measured once a run's last step is taken: how well a teacher fits its training set; a
student's train agreement as the paper's Fig. 5 (right) measures it, its deviations from its
teacher, stage CKA and train KL (Table 1, Fig. 6b) and loss plane (Fig. 6c); and the check that a
student learned something."""

import math

import torch
from torch import nn

from . import augment, data, metrics, surface
from .config import StudentConfig
from .devices import autocast
from .errors import TrainingFailed
from .inputs import new_model
from .predictions import predict

CKA_IMAGES = 1_000  # test images for a one-teacher student's stage CKA (an n x n kernel per stage)


# distillation images (a seeded random subset) for Fig. 6c: n * n grid points + surface.PATH
SURFACE_IMAGES = 500


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
    check_learned(cfg, final)
    (train_x, train_y), (test_x, test_y) = train, test
    final["eval_train_agreement"] = fresh_pass_agreement(cfg, model, teacher, train_x, device)
    # teacher and student logits on each split, in fp32, predicted once for every use below
    logits = {
        split: (predict(teacher, x, device, bf16=False), predict(model, x, device, bf16=False), y)
        for split, (x, y) in {"test": (test_x, test_y), "train": (train_x, train_y)}.items()
    }
    deviations = {split: metrics.deviations(*out) for split, out in logits.items()}
    if cfg.compares_stages:
        final.update(stage_cka(teacher.members[0], model, test_x[:CKA_IMAGES], device))
        # tau = 1 KL on the un-augmented distillation images: Fig. 6b's "train KL"
        final["train_kl"] = metrics.predictive_kl(*logits["train"][:2])
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
        xb = data.layout(xb)
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
    xb = data.as_input(x.to(device))
    pairs = zip(teacher.stages(xb), student.stages(xb), strict=True)
    return {
        f"cka_stage{k}": metrics.cka(t.float(), s.float(), "rbf")
        for k, (t, s) in enumerate(pairs, 1)
    }


def check_learned(cfg: StudentConfig, final: dict) -> None:
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
