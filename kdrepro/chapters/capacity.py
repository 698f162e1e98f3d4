"""Fig. 12 (H12): is the student's capacity the bottleneck?

The paper's App. C.1 distills ResNet-20 teachers into ResNet-20 and ResNet-56 students, and
ResNet-56 teachers into ResNet-56 and ResNet-110 students (m = 1, 3, 5). Going from 20 to 56 layers
gains 2-3 points of agreement and some accuracy; going from 56 to 110 gains accuracy only. A student
with several times its teacher's depth still disagrees with it: capacity is not what stops
fidelity.

No teacher of its own: each deeper student stands beside one of chapter 3's students of the
teacher's own architecture (shared by config), with the same teachers, images, batches, optimizer
steps and temperature, so that the student's depth is the only difference within a trial (its
initial weights are a fresh draw of the deeper network). Chapter 3's m = 1 students at twice the
steps come along as the length control.
"""

import pandas as pd

from .. import verdict as v
from ..figures import name
from ..plan import Plan, check_profile, recipe
from . import self_vs_ensemble as sve
from .lenet_mnist import NEAR_PERFECT

# The recipe at each scale: the deeper `students` distilled from chapter 3's teachers, for its
# ensemble sizes `ms`. The paper's rows R20 -> R56 and R56 -> R110 (chapter 3's paper teachers are
# R56); at budget, PreResNet-8 teachers into PreResNet-20 students (2.5x the depth, as R20 -> R56 is
# 2.8x) for m = 1 and 3 on chapter 3's five trials: about 5 CPU-hours (a PreResNet-20 step costs
# about 2.6 PreResNet-8 steps).
RECIPE = recipe(
    paper=dict(students=("preresnet110",), ms=(1, 3, 5)),
    gpu=dict(students=("preresnet56",), ms=(1,)),  # about 10 H100-minutes
    budget=dict(students=("preresnet20",), ms=(1, 3)),
    smoke=dict(students=("preresnet14",), ms=(1,)),
)
FINDINGS = {"H12": "Student capacity is not the bottleneck"}
# the paper's Fig. 12 as its App. C.1 states it (CIFAR-100, agreement)
HEADLINES: dict[str, tuple[str, str]] = {
    "H12": ("App. C.1, Fig. 12", "R20 → R56 student: +2–3 pt agreement; R56 → R110: ≈ 0"),
}
# The same per step in depth, for the chapter's table: what a deeper student gains over a student of
# its teachers' depth, as App. C.1 states it (the book reads no levels off Fig. 12)
PAPER_GAINS = {
    "R20 → R56": "+2–3 pt agreement, some accuracy",
    "R56 → R110": "≈ 0 pt agreement, some accuracy",
}
SCOPE = (
    "PreResNet-8 teachers and PreResNet-8 / -20 students, CIFAR-10 (JPEG q75), chapter 3's "
    "teachers (2k images) and recipe (students at 3× the teachers' steps), budget scale"
)

# Rules fixed before any deeper student was run. "Little" agreement gained by a deeper student: at
# most LITTLE, the top of the paper's +2-3 points for R20 -> R56 (the larger of its two steps); the
# check fails when the whole interval lies above it, when capacity buys more fidelity than the
# paper found.
LITTLE = 0.03
# "Still disagrees": the deeper student's test agreement below the near-perfect fidelity H1 asks of
# LeNet-5 on MNIST (`lenet_mnist.NEAR_PERFECT`). Context: at this scale it can hardly fail, so it
# counts toward nothing.


def plan(
    profile: str = "budget", seeds: tuple[int, ...] | None = None, dataset: str | None = None
) -> Plan:
    """Fig. 12: chapter 3's students of `ms` without extra data (and its length control) beside
    students of each deeper architecture that differ from them in depth alone."""
    check_profile(profile, RECIPE)
    p = RECIPE[profile]
    return sve.beside(
        "capacity",
        sve.plan(profile, seeds=seeds, dataset=dataset),
        p,
        lambda cfg: {"student": cfg.model, "own": 1},  # own = 1: the teachers' architecture
        [({"student": model, "own": 0}, {"model": model}) for model in p["students"]],
    )


def findings(table: pd.DataFrame, scope: str = SCOPE) -> list[v.Finding]:
    """H12 on paired per-trial differences (each deeper student against the same trial's student of
    the teacher's architecture): agreement rises by at most LITTLE for every m and depth (core,
    guarded by chapter 3's length control: measured on students of the teacher's architecture, it
    cannot say whether the deeper student, at the same steps, is further from converged); the
    accuracy gain and the deeper student's level (still below NEAR_PERFECT) are context."""
    students = table[table.role == "student"]
    main = students[students.length == 1]
    own = students[students.own == 1].student.iloc[0]
    moved = {}
    if students.length.max() > 1:
        moved = v.length_moves(
            students[(students.m == 1) & (students.student == own)],
            {"length": 1},
            {"length": int(students.length.max())},
            ("agreement", "accuracy"),
        )
    checks = []
    for m in sorted(set(main.m)):
        for model in sorted(set(main.student) - {own}):
            # readers see the paper's names ('PreResNet-20'), the table keeps the ids
            deep, base = name(model), name(own)
            d = v.paired(main, {"m": m, "student": own}, {"m": m, "student": model}, "agreement")
            checks.append(
                v.guarded(
                    v.Check(
                        f"m = {m}: a {deep} student gains at most {LITTLE * 100:.0f} pt agreement "
                        f"over a {base} student (the teacher's architecture)",
                        *HEADLINES["H12"],
                        d.here(f"agreement, {deep} − {base} "),
                        v.at_most(d, LITTLE),
                        value=f"m = {m}, {deep} − {base}: {d.short()}",
                    ),
                    d.mean - LITTLE,
                    moved.get("agreement"),
                    of=f"m = 1 {base} students",
                )
            )
            acc = v.paired(main, {"m": m, "student": own}, {"m": m, "student": model}, "accuracy")
            checks.append(
                v.Check(
                    f"m = {m}: the {deep} student's accuracy against the {base} student's",
                    "App. C.1, Fig. 12",
                    "some accuracy gain",
                    acc.here(f"accuracy, {deep} − {base} "),
                    v.rises(acc),
                    core=False,
                )
            )
            level = v.interval(main[(main.m == m) & (main.student == model)].agreement)
            checks.append(
                v.Check(
                    f"m = {m}: the {deep} student still disagrees with its teacher (test "
                    f"agreement below {NEAR_PERFECT * 100:.0f} %)",
                    "App. C.1, Fig. 12",
                    "far below: a large share of the test set",
                    f"{level.text(signed=False, unit=' %')}, {level.n} trials",
                    v.at_most(level, NEAR_PERFECT),
                    core=False,
                )
            )
    return [
        v.Finding(
            "H12",
            "Student capacity is not the bottleneck: a deeper student gains little agreement",
            checks,
            scope,
            v.convergence(table),
        )
    ]
