"""The book's experiments at three scales: each builds the list of runs a chapter needs.

`smoke` proves a chapter runs end to end (CI, seconds); `budget` is what the published book shows, sized for a
2-core CPU and the datasets available offline; `paper` is the paper's recipe (SPEC §1.3-1.4) for a GPU.
Each row of a plan carries labels (role, trial, m, ...) that the chapters group by.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .config import RunConfig, StudentConfig, TeacherConfig

PROFILES = ("smoke", "budget", "paper")


@dataclass
class Plan:
    """An experiment's runs, teachers first, each with the labels that place it in the chapter's figures."""

    name: str
    profile: str
    rows: list[tuple[dict, RunConfig]]
    settings: dict

    @property
    def configs(self) -> list[RunConfig]:
        return [cfg for _, cfg in self.rows]

    def table(self, results: list[dict]) -> pd.DataFrame:
        """One row per run: its labels, final test metrics, its teacher's test metrics and compute."""
        records = []
        for (labels, cfg), res in zip(self.rows, results, strict=True):
            rec = {**labels, "run_id": cfg.run_id, **res["final"],
                   "wall_seconds": res["provenance"]["wall_seconds"], "device_name": res["provenance"]["device_name"],
                   "git_commit": res["provenance"]["git_commit"], "train_examples": res["train_examples"]}
            rec.update({f"teacher_{k}": v for k, v in res.get("teacher_test", {}).items()})
            records.append(rec)
        table = pd.DataFrame.from_records(records)
        labels = {key for labels, _ in self.rows for key, value in labels.items() if isinstance(value, int)}
        table[sorted(labels)] = table[sorted(labels)].astype("Int64")  # teachers have no m: keep ints, not floats
        # A single trial has no independent teacher to compare with: its control columns are empty, not absent.
        return table.reindex(columns=[*table.columns, *{"control_agreement", "control_kl"} - set(table.columns)])


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: expected one of {PROFILES}")


def _epochs(images: int, size: int) -> int:
    # Students of one figure get the same number of gradient steps whatever their distillation-set size.
    return max(1, math.ceil(images / size))


# --- Chapter 2, Fig. 2: LeNet-5 self-distillation on MNIST with growing distillation sets -------------------------

LENET = {
    "smoke": dict(seeds=(0, 1), teacher_epochs=5, sizes=(200, 1000), images=4_000, evals=2, test_size=1000),
    "budget": dict(seeds=(0, 1, 2), teacher_epochs=100, sizes=(200, 2_000, 12_000, 60_000), images=600_000, evals=8),
    "paper": dict(seeds=(0, 1, 2), teacher_epochs=100, sizes=(200, 2_000, 12_000, 60_000), images=300 * 60_000,
                  evals=30),
}


def lenet_mnist(profile: str = "budget", seeds: tuple[int, ...] | None = None, dataset: str = "mnist") -> Plan:
    """Fig. 2 (chapter 2): LeNet-5 self-distillation on MNIST with growing distillation sets.

    Teacher: LeNet-5 on a stratified 200-image subset (one per trial), 100 epochs. Students: LeNet-5 distilled
    at tau = 1 on nested sets from the teacher's own 200 images up to all 60k, same number of steps each.

    Choices where the paper is silent (SPEC Fig. 2 [U], §8): crop with 2-pixel zero padding and no flip
    (digits are not mirror-symmetric), unitcube normalization, tau = 1, SGD-Nesterov lr 0.05, batch 128."""
    _check_profile(profile)
    p = LENET[profile]
    seeds = tuple(seeds if seeds is not None else p["seeds"])
    teachers = {s: TeacherConfig(dataset=dataset, model="lenet5", train_size=200, subset_seed=s, seed=s,
                                 epochs=p["teacher_epochs"], batch_size=64, lr=0.05, augment="crop", crop_pad=2,
                                 evals=5, test_size=p.get("test_size")) for s in seeds}
    rows = [({"role": "teacher", "trial": s}, t) for s, t in teachers.items()]
    for i, s in enumerate(seeds):
        control = (teachers[seeds[i - 1]],) if len(seeds) > 1 else ()
        for size in p["sizes"]:
            cfg = StudentConfig(dataset=dataset, model="lenet5", train_size=size, subset_seed=s, seed=s,
                                teachers=(teachers[s],), control=control, temperature=1.0, augment="crop", crop_pad=2,
                                epochs=_epochs(p["images"], size), evals=p["evals"], test_size=p.get("test_size"))
            rows.append(({"role": "student", "trial": s, "distill_size": size}, cfg))
    return Plan("lenet_mnist", profile, rows, {**p, "seeds": seeds, "dataset": dataset})


# --- Chapter 3, Figs. 1 and 10: self-distillation vs ensemble distillation, with extra distillation data ----------

ENSEMBLE = {
    "smoke": dict(seeds=(0, 1), model="preresnet8", pool=3, test_size=1000, ms=(1, 3), teacher_size=500, teacher_epochs=2,
                  extras=(0, 500), extra_ms=(1, 3), images=1_000, evals=1, teacher_lr=0.1, teacher_batch=128),
    "budget": dict(seeds=(0, 1, 2), model="preresnet8", pool=9, ms=(1, 3, 5), teacher_size=6_000, teacher_epochs=12,
                   extras=(0, 12_000), extra_ms=(1, 3), images=6_000 * 12, evals=5, teacher_lr=0.1,
                   teacher_batch=128),
    "paper": dict(seeds=(0, 1, 2), model="preresnet56", pool=15, ms=(1, 3, 5), teacher_size=None, teacher_epochs=200,
                  extras=(0,), extra_ms=(), images=50_000 * 300, evals=30, teacher_lr=0.1, teacher_batch=256),
}


def self_vs_ensemble(profile: str = "budget", seeds: tuple[int, ...] | None = None,
                     dataset: str | None = None) -> Plan:
    """Figs. 1 and 10 (chapter 3): self-distillation vs ensemble distillation, with extra distillation data.

    A pool of teachers trained on the same images with different seeds; trial i's m-teacher ensemble takes
    pool members (i*m + j) mod N, j < m (the official `select_ckpts`). Students of the same architecture are
    distilled at tau = 1 (Fig. 10's setting) on the teacher's images, and, for some m, on the teacher's images
    plus extra real images the teachers never saw (standing in for the paper's GAN samples), same steps each.
    The control teachers of trial i are trial i-1's: the independent-student baseline (SPEC §1.5)."""
    _check_profile(profile)
    p = ENSEMBLE[profile]
    dataset = dataset or ("cifar100" if profile == "paper" else "cifar10_jpeg")
    seeds = tuple(seeds if seeds is not None else p["seeds"])
    pool = [TeacherConfig(dataset=dataset, model=p["model"], train_size=p["teacher_size"], seed=k,
                          epochs=p["teacher_epochs"], batch_size=p["teacher_batch"], lr=p["teacher_lr"],
                          evals=min(5, p["teacher_epochs"]), test_size=p.get("test_size")) for k in range(p["pool"])]
    rows = [({"role": "teacher", "member": k}, t) for k, t in enumerate(pool)]
    base = p["teacher_size"] or 50_000
    members = lambda i, m: tuple(pool[(i * m + j) % len(pool)] for j in range(m))  # noqa: E731
    for m in p["ms"]:
        for extra in p["extras"]:
            if extra and m not in p["extra_ms"]:
                continue
            for i, s in enumerate(seeds):
                control = members(seeds[i - 1], m) if len(seeds) > 1 else ()
                size = base + extra if p["teacher_size"] else None
                cfg = StudentConfig(dataset=dataset, model=p["model"], train_size=size, seed=s,
                                    teachers=members(s, m), control=control, temperature=1.0,
                                    epochs=_epochs(p["images"], base + extra), evals=p["evals"],
                                    test_size=p.get("test_size"))
                rows.append(({"role": "student", "trial": s, "m": m, "extra": extra}, cfg))
    return Plan("self_vs_ensemble", profile, rows, {**p, "seeds": seeds, "dataset": dataset})


EXPERIMENTS: dict[str, Callable[..., Plan]] = {"lenet_mnist": lenet_mnist, "self_vs_ensemble": self_vs_ensemble}


def plan(name: str, profile: str = "budget", **kwargs) -> Plan:
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment={name!r}: expected one of {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name](profile, **kwargs)
