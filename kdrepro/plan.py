"""A chapter's runs at one scale, and the table of their results that its figures and checks read.

Profiles: `smoke` proves a chapter runs end to end and learns (CI, seconds); `budget` is what the
published book shows, sized for a 2-core CPU and the datasets available offline; `gpu` fits 20
minutes of one H100 on the full CIFAR-10 (JPEG) training set (chapters that have one); `paper` is
the paper's recipe for a GPU cluster. Each row of a plan carries labels (role, trial, m, ...) that
the chapters group by.
"""

import math
from dataclasses import dataclass

import pandas as pd

from . import data
from .config import RunConfig, StudentConfig
from .errors import ConfigError, KdreproError

PROFILES = ("smoke", "budget", "gpu", "paper")
CHANCE_MARGIN = 0.10  # a teacher must beat chance by this much (accuracy, a fraction)
CONSTANT_SHARE = 0.5  # ... and no class may take more than this share of its test predictions


class LearnedNothing(KdreproError):
    """A teacher ended near chance or predicts (nearly) one class, or a student agrees with its
    teacher no more than chance: a broken loop or loss, and numbers that would mean nothing."""


# Images in the CIFAR-10 (and CIFAR-100) training split: the paper's recipes count student steps in
# passes over it.
CIFAR_TRAIN = data.SIZES["cifar10"][0]


# A recipe's sub-tables (airbench's `hyp` has such), merged key by key: `data` (the images), `net`
# (the network of teachers and students), `teacher` and `student` (optimizer, steps, evaluations).
# Every other value, a number or a tuple or a mapping keyed by m or by optimizer, is replaced whole:
# a smaller profile's `taus={3: (4.0,)}` runs m = 3 alone, not m = 3 beside the paper's other m.
TABLES = ("data", "net", "teacher", "student")


def override(table: dict, changes: dict, where: str = "recipe") -> dict:
    """`table` with `changes`, each sub-table merged key by key. A key `table` lacks is a
    ConfigError: a misspelt key would otherwise add a setting no plan reads and leave the intended
    one as it was."""
    out = dict(table)
    for key, value in changes.items():
        if key not in table:
            raise ConfigError(
                f"{where}: {key!r} is not a key of the table it overrides; expected one of "
                f"{sorted(table)}"
            )
        if key in TABLES:
            out[key] = override(table[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def recipe(paper: dict, **smaller: dict) -> dict[str, dict]:
    """A chapter's recipe at every profile it has: the paper's table, and each smaller profile as
    the settings it changes (nanoGPT's configs override its defaults so), merged into a copy of
    the paper's (`override`)."""
    return {"paper": paper, **{name: override(paper, c, name) for name, c in smaller.items()}}


# The paper's optimizer for teachers and students alike (App. A.3; the official code's
# `config/image_classification.yaml`): SGD with Nesterov momentum 0.9 and weight decay 1e-4, no
# warm-up (ImageNet's recipe has one).
SGD = dict(momentum=0.9, nesterov=True, weight_decay=1e-4, warmup_epochs=0)


def training(table: dict) -> dict:
    """A recipe's `teacher` or `student` table as config fields: how a run steps (batch, optimizer,
    a cosine per step from `lr` to `lr_min`) and how often it is scored."""
    return dict(
        batch_size=table["batch"],
        lr=table["lr"],
        lr_min=table["lr_min"],
        momentum=table["momentum"],
        nesterov=table["nesterov"],
        weight_decay=table["weight_decay"],
        warmup_epochs=table["warmup_epochs"],
        evals=table["evals"],
    )


def check_profile(profile: str, recipes: dict | None = None) -> None:
    """A known profile, and one the chapter (its `RECIPE`) has."""
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r}: expected one of {PROFILES}")
    if recipes is not None and profile not in recipes:
        raise ConfigError(
            f"profile={profile!r}: this chapter has no {profile} profile yet; expected one of "
            f"{tuple(recipes)}"
        )


def check_seeds(seeds) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ConfigError(f"seeds={list(seeds)}: expected one or more integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={list(seeds)}: each trial needs its own seed")
    return seeds


# students' init seeds start here; teachers' seeds are small pool or trial indices
FRESH_INIT = 1_000_000


def fresh_init(seed: int) -> int:
    """A student's init seed for trial `seed`, apart from every teacher's: with the trial's seed
    itself, a student would start from the initial weights of its teacher of the same seed and
    architecture (Table 1's "teacher init"), not from an independent random init as in the paper."""
    return FRESH_INIT + seed


def starts_at_teacher_init(cfg: StudentConfig) -> bool:
    """Whether a student starts from the initial weights of one of its teachers or of its control's:
    by asking (init='shared') or, in runs stored before `init_seed`, because it shares a
    same-architecture network's seed."""
    return cfg.init == "shared" or (cfg.init == "random" and cfg.random_start_is_a_teachers)


def epochs_for(images: int, examples: int) -> int:
    """Epochs that give `images` of steps on a set of `examples`; refuses a budget that is not a
    whole number of epochs, because then students of one comparison would not take the same number
    of steps."""
    if images % examples:
        raise ConfigError(f"images={images}: not a whole number of epochs of {examples} examples")
    return images // examples


@dataclass
class Plan:
    """An experiment's runs, teachers first, each with the labels that place it in the chapter's
    figures."""

    name: str
    profile: str
    rows: list[tuple[dict, RunConfig]]
    settings: dict

    @property
    def configs(self) -> list[RunConfig]:
        return [cfg for _, cfg in self.rows]

    def table(self, results: list[dict]) -> pd.DataFrame:
        """One row per run: its labels, final test metrics, convergence, its teacher's test metrics
        and compute. A teacher near chance or predicting one class, or a student at chance
        agreement, raises LearnedNothing."""
        records = []
        for (labels, cfg), res in zip(self.rows, results, strict=True):
            rec = {
                **labels,
                "run_id": cfg.run_id,
                **res["final"],
                "steps": res["steps"],
                **dict(zip(("late_change", "late_se"), late_change(res["curves"], cfg.batch_size))),
                "wall_seconds": res["provenance"]["wall_seconds"],
                # older records have wall time only
                "cpu_seconds": res["provenance"].get("cpu_seconds", float("nan")),
                "device_name": res["provenance"]["device_name"],
                "git_commit": res["provenance"]["git_commit"],
                "git_dirty": res["provenance"]["git_dirty"],
                "train_examples": res["train_examples"],
            }
            rec.update({f"teacher_{k}": v for k, v in res.get("teacher_test", {}).items()})
            if "surface" in res:
                # Fig. 6c's ridge on the path to the teacher and its peak, in the loss's nats; how
                # far from the teacher (weight-space L2) the student started and ended
                path, points = res["surface"]["path"], res["surface"]["points"]
                rec["loss_ridge"], rec["loss_peak"] = max(path) - path[-1], max(path)
                rec["dist_init"] = math.hypot(*points["init"])
                rec["dist_final"] = points["final"][0]
            if "deviations" in res:  # a student's `metrics.deviations` record, whole
                rec["deviations"] = res["deviations"]
            records.append(rec)
        table = pd.DataFrame.from_records(records)
        labels = {
            key
            for labels, _ in self.rows
            for key, value in labels.items()
            if isinstance(value, int)
        }
        table[sorted(labels)] = table[sorted(labels)].astype(
            "Int64"
        )  # teachers have no m: keep ints, not floats
        # A plan without controls has no control columns: keep them, empty, so chapters can always
        # name them.
        table = table.reindex(
            columns=[*table.columns, *{"control_agreement", "control_kl"} - set(table.columns)]
        )
        _check_learned(table, data.NUM_CLASSES[self.configs[0].dataset])
        return table


def late_change(curves: list[dict], batch_size: int) -> tuple[float, float]:
    """How much the train metric (agreement for students, accuracy for teachers) moved over the last
    quarter of training: last evaluation minus the one nearest 75 % of the steps (near 0:
    converged), and the standard error of that difference from sampling alone. Each evaluation's
    train metric is a running mean over the batches since the previous one, so the error is binomial
    over those examples (an approximation: batches repeat images)."""
    key = "train_agreement" if "train_agreement" in curves[-1] else "train_accuracy"
    k = min(range(len(curves)), key=lambda i: abs(curves[i]["step"] - 0.75 * curves[-1]["step"]))

    def variance(i: int) -> float:
        examples = (curves[i]["step"] - (curves[i - 1]["step"] if i else 0)) * batch_size
        return curves[i][key] * (1 - curves[i][key]) / examples

    return curves[-1][key] - curves[k][key], math.sqrt(
        variance(len(curves) - 1) + (variance(k) if k < len(curves) - 1 else 0.0)
    )


def _check_learned(table: pd.DataFrame, classes: int) -> None:
    teachers = table[table.role == "teacher"]
    bad = teachers[
        (teachers.accuracy < 1 / classes + CHANCE_MARGIN)
        | (teachers.top_class_share > CONSTANT_SHARE)
    ]
    if len(bad):
        r = bad.iloc[0]
        raise LearnedNothing(
            f"teacher {r.run_id} ended at {r.accuracy * 100:.1f} % test accuracy with "
            f"{r.top_class_share * 100:.0f} % of its predictions in one class (chance "
            f"{100 / classes:.0f} %): it learned nothing, so its students' agreement is "
            "meaningless; train it longer or with another lr"
        )
    students = table[table.role == "student"]
    bad = students[students.agreement < 1 / classes + CHANCE_MARGIN]
    if len(bad):
        r = bad.iloc[0]
        raise LearnedNothing(
            f"student {r.run_id} agrees with its teacher on {r.agreement * 100:.1f} % of test "
            f"images (chance {100 / classes:.0f} %): distillation learned nothing; check the loss "
            "and the lr"
        )


def students_of(plan: Plan) -> list[StudentConfig]:
    return [cfg for cfg in plan.configs if isinstance(cfg, StudentConfig)]


def teachers_of(students: list[tuple[dict, RunConfig]], sources: dict[str, Plan]) -> list[tuple]:
    """The teacher rows of `sources` that `students` distill from or are compared with, each once
    and labelled with its source plan's name: how a chapter that reads other chapters' runs (by
    config) gathers their teachers."""
    needed = {t.run_id for _, cfg in students for t in cfg.teachers + cfg.control}
    teachers, seen = [], set()
    for source, p in sources.items():
        for labels, cfg in p.rows:
            if labels["role"] == "teacher" and cfg.run_id in needed - seen:
                seen.add(cfg.run_id)
                teachers.append(({**labels, "source": source}, cfg))
    return teachers
