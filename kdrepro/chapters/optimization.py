"""Chapter 7, Fig. 6a/b (H7, H8): is it the optimizer? Longer training, Adam, and starting near the
teacher.

Self-distillation (m = 1) of LayerNorm PreResNets at tau = 4 with crop + flip, alpha = 0, as in the
paper's §6.2. Each trial has its own teacher; its control is the previous trial's teacher. Fig. 6a:
the default student (SGD with weight decay, `images` of steps) against SGD and Adam without weight
decay trained `durations` times longer. Fig. 6b: students initialised at lambda * teacher + (1 -
lambda) * random, with the learning rate of the official code's `scripts/image_classification.py`,
max(lr * (1 - lambda), 1e-6) (its `loc_param` is 1 - lambda, 1e-6 its `eta_min`); lambda = 0 is the
default student itself. Unlike the other chapters, students here take different numbers of steps
on purpose (training length is the variable); every comparison is between students of one trial.
"""

import math

import pandas as pd

from .. import data, runs, store
from .. import verdict as v
from ..config import StudentConfig, TeacherConfig
from ..plan import (
    CIFAR_TRAIN,
    SGD,
    Plan,
    check_profile,
    check_seeds,
    epochs_for,
    fresh_init,
    recipe,
    training,
)
from . import self_vs_ensemble as sve

LAMBDAS = (0.0, 0.25, 0.375, 0.5, 0.75, 0.875, 1.0)  # Fig. 6b
# Fig. 6a (R20-LN, CIFAR-100, train agreement %, means of 3 trials) and Fig. 6b (train agreement %
# per lambda): the means of the per-trial values in the official code's
# notebooks/plots_optimization.ipynb at commit c2bfc1b (deleted at HEAD).
PAPER_6A = {
    ("sgd", 1): 78.96,
    ("sgd", 3.3): 81.27,
    ("sgd", 16.7): 83.37,
    ("adam", 3.3): 80.47,
    ("adam", 16.7): 82.87,
}
PAPER_6B = {
    0.0: 78.96,
    0.25: 80.39,
    0.375: 97.55,
    0.5: 99.65,
    0.75: 99.57,
    0.875: 99.91,
    1.0: 100.0,
}
# Table 1 (R20, CIFAR-100, 10 trials): test agreement %, test KL and RBF CKA of stages 1-3, mean
# (std).
PAPER_TABLE1 = {
    "random": {
        "agreement": (77.174, 0.352),
        "kl": (0.836, 0.016),
        "cka_stage1": (0.939, 0.017),
        "cka_stage2": (0.925, 0.027),
        "cka_stage3": (0.885, 0.011),
    },
    "shared": {
        "agreement": (77.098, 0.238),
        "kl": (0.838, 0.020),
        "cka_stage1": (0.951, 0.017),
        "cka_stage2": (0.937, 0.020),
        "cka_stage3": (0.890, 0.015),
    },
}
# "no functional difference" in KL: within +-10 % of the random-init student's (our margin)
KL_TOLERANCE = 0.10
# "the teacher's basin": a ridge on the path under 5 % of the student's excess loss (ours), or
# under RIDGE_FLOOR nats of the tau^2-scaled loss: a student that reached its teacher has an excess
# near 0 (the paper's lambda = 0.75, first trial: 51.17 against 51.16 at lambda = 1, in the official
# code's notebooks/plots_optimization.ipynb at c2bfc1b), where 5 % of it is below the loss's
# rounding on a few hundred images, so the ratio alone would call rounding a ridge
BASIN_TOLERANCE = 0.05
RIDGE_FLOOR = 1e-3
# Fig. 6b's sharp threshold as one pre-set comparison: the rise of train agreement from the second
# lambda to the third against the rise from the first to the second (the paper's jump, 0.25 to
# 0.375, lies in the second step; equal steps, so a threshold shows as a larger second rise)
THRESHOLD_LAMS = (0.0, 0.25, 0.5)
# the context check's "a threshold somewhere": the steepest rise between neighbouring lambdas at
# least this multiple of the average rise (our margin; on the budget grid, the paper's Fig. 6b
# gives 5.0)
STEEP_MARGIN = 3.0
# "only a few points" of train agreement (Fig. 6a's 16.7x gains 4.4) and "gains little" (Fig. 6b's
# lambda = 0.25 gains 1.4 over lambda = 0): at most this much (our margin)
FEW = 0.05
# Fig. 6b's "matches the teacher" (99.5 % and above from lambda = 0.5): default students at least
# this close leave Fig. 6a no gap to close (`no_gap`: a caveat, no rule)
CEILING = 0.995

# The recipe at each scale. Units: images (subset; student images of steps for the default run, a
# whole number of epochs of the subset), epochs (passes over the subset), images per step (batch),
# learning rates per step. Teachers: LayerNorm, chapter 3's optimizer (SGD, cosine annealing).
# `durations`: per optimizer, multiples of the student images for the longer runs without weight
# decay (the paper: 1k and 5k epochs against 300, i.e. 3.3x and 16.7x, SGD and Adam). `long`: the
# length control, the default student at this multiple of its steps (None: none). `lams`: Fig. 6b's
# lambdas besides 0 (smoke runs the two its checks need). `table1_seeds`: Table 1's trials (a
# random-init and a shared-init student each); `surface`: grid points per axis of Fig. 6c's loss
# planes, computed for the students of `surface_lams` in every trial of `seeds`.
RECIPE = recipe(
    paper=dict(
        seeds=(0, 1, 2),  # one trial each: its teacher's subset and seed, its students' seed
        table1_seeds=tuple(range(10)),
        durations={"sgd": (10 / 3, 50 / 3), "adam": (10 / 3, 50 / 3)},
        long=None,
        lams=LAMBDAS[1:],
        surface_lams=(0.0, 0.25, 0.375),
        surface=25,
        data=dict(
            subset=None,  # each trial's stratified subset, teacher's and students' (None: all)
            test_size=None,  # a stratified subset of the test set (None: all of it)
        ),
        net=dict(model="preresnet20", norm="layer"),  # teacher and student alike
        teacher=dict(
            epochs=200,
            batch=256,
            lr=0.1,  # cosine per step down to lr_min
            lr_min=0.0,
            **SGD,
            evals=30,  # test-set evaluations per run, evenly spaced in steps
        ),
        student=dict(
            images=300 * CIFAR_TRAIN,
            batch=128,
            lr=0.05,
            lr_min=1e-6,
            **SGD,  # Fig. 6a's longer runs take none
            adam_lr=1e-3,  # Fig. 6a's Adam runs (the paper does not state theirs)
            temperature=4.0,
            evals=30,
        ),
    ),
    # LayerNorm PreResNet-20 teachers on the full set (chapter 3's gpu teacher schedule); students
    # of 4 epochs (0.8x the teachers' steps), one longer duration (2x), and no lambda = 0.875 row:
    # 19 min at `compute.H100_PRERESNET20`
    gpu=dict(
        table1_seeds=(0, 1, 2),
        durations={"sgd": (2,), "adam": (2,)},
        lams=(0.25, 0.375, 0.5, 0.75, 1.0),
        surface_lams=(0.0, 0.25, 0.375, 0.5),
        surface=13,
        teacher=dict(epochs=10, evals=5),
        student=dict(images=4 * CIFAR_TRAIN, evals=4),
    ),
    # A LayerNorm PreResNet-8 fits 500 images (100 % eval-mode train accuracy; a pilot measured 99.8
    # % by three quarters of training) in 1,562 steps at batch 128 (400 epochs), the steps of
    # chapter 3's teachers; on 1,000 images it did not (98.9 % after 2,343 steps), and 2,000 at 60
    # epochs had reached 55-59 %. Students take 3x those steps (600k images); Fig. 6a's arms span 5x
    # (2x and 5x, SGD; Adam at 2x only: its 5x arm would add 2 of the chapter's 7 CPU-hours); lambda
    # 0.875 and 1 are cut (the paper's curve is flat above 0.5).
    budget=dict(
        table1_seeds=(0, 1, 2, 3, 4),
        durations={"sgd": (2, 5), "adam": (2,)},
        long=2,
        lams=(0.25, 0.375, 0.5, 0.75),
        surface_lams=(0.0, 0.25, 0.375, 0.5),
        surface=13,
        data=dict(subset=500),
        net=dict(model="preresnet8"),
        teacher=dict(epochs=400, batch=128, evals=4),
        student=dict(images=600_000, evals=4),
    ),
    smoke=dict(
        seeds=(0, 1),
        table1_seeds=(0, 1),
        durations={"sgd": (2,), "adam": (2,)},
        long=None,  # the length control's guard is unit-tested; CI's time is short
        lams=(0.25, 0.5),
        surface_lams=(0.0, 0.5),
        surface=5,
        data=dict(subset=1_000, test_size=500),
        net=dict(model="preresnet8"),
        teacher=dict(epochs=12, batch=128, evals=4),
        student=dict(images=4_000, batch=64, evals=2),
    ),
)
FINDINGS = {
    "H7": "Longer training or another optimizer helps only marginally",
    "H8": "Optimization is the cause: a student started near its teacher converges to it",
    "H9": "The teacher's initial weights give no functional benefit",
}
HEADLINES: dict[str, tuple[str, str]] = {
    "H7": ("Fig. 6a, §6.2", "+4.4 pt at 16.7× (79.0 → 83.4 %)"),
    "H8": (
        "Fig. 6b, §6.2",
        "train agreement +19.3 pt from λ = 0.25 to 0.5, +1.4 pt from 0 to 0.25",
    ),
    "H9": ("Table 1, §6.2", "−0.08 pt (77.098 vs 77.174 %, sd 0.24–0.35)"),
}
SCOPE = (
    "LayerNorm PreResNet-8 self-distillation at τ = 4, CIFAR-10 (JPEG q75), teachers fit to 500 "
    "images, students at 3× their steps, budget scale"
)


def plan(
    profile: str = "budget", seeds: tuple[int, ...] | None = None, dataset: str | None = None
) -> Plan:
    """Fig. 6a/b/c and Table 1 (chapter 7): longer training, Adam, initialization near the teacher,
    loss planes and the teacher's initial weights, for R20-LN-like nets. `seeds` replaces both trial
    lists."""
    check_profile(profile, RECIPE)
    p = RECIPE[profile]
    dataset = dataset or sve.default_dataset(profile)
    seeds = check_seeds(seeds if seeds is not None else p["seeds"])
    table1 = seeds if seeds != p["seeds"] else check_seeds(p["table1_seeds"])
    d, t, st = p["data"], p["teacher"], p["student"]
    common = dict(dataset=dataset, **p["net"], test_size=d["test_size"])
    everyone = tuple(dict.fromkeys(seeds + table1))
    teachers = {
        s: TeacherConfig(
            **common,
            train_size=d["subset"],
            seed=s,
            subset_seed=s,
            epochs=t["epochs"],
            **training(t),
        )
        for s in everyone
    }
    rows = [({"role": "teacher", "trial": s}, cfg) for s, cfg in teachers.items()]
    base = d["subset"] or data.SIZES[dataset][0]
    steps = epochs_for(st["images"], base)
    # Rows in order of cost, so that a sweep cut short has whole comparisons: Table 1, then Fig. 6b,
    # then the length control and Fig. 6a.
    table1_rows, lambda_rows, long_rows = [], [], []
    for i, s in enumerate(everyone):
        student = dict(
            common,
            train_size=d["subset"],
            seed=s,
            subset_seed=s,
            teachers=(teachers[s],),
            control=(teachers[everyone[i - 1]],) if len(everyone) > 1 else (),
            temperature=st["temperature"],
            **training(st),
        )
        fresh = dict(student, init_seed=fresh_init(s))
        planes = p["surface"] if s in seeds else 0
        default = StudentConfig(
            **fresh, epochs=steps, surface=planes if 0.0 in p["surface_lams"] else 0
        )
        table1_rows.append(
            (
                {
                    "role": "student",
                    "trial": s,
                    "init": "random",
                    "optimizer": "sgd",
                    "duration": 1.0,
                    "lam": 0.0,
                    "length": 1,
                },
                default,
            )
        )
        if s in table1:
            table1_rows.append(
                (
                    {
                        "role": "student",
                        "trial": s,
                        "init": "shared",
                        "optimizer": "sgd",
                        "duration": 1.0,
                        "length": 1,
                    },
                    StudentConfig(**student, epochs=steps, init="shared"),
                )
            )
        if s not in seeds:
            continue
        for lam in p["lams"]:
            cfg = StudentConfig(
                **fresh,
                epochs=steps,
                init="interpolate",
                init_lambda=lam,
                init_lr_scale=True,
                surface=planes if lam in p["surface_lams"] else 0,
            )
            lambda_rows.append(
                (
                    {
                        "role": "student",
                        "trial": s,
                        "init": "interpolate",
                        "optimizer": "sgd",
                        "duration": 1.0,
                        "lam": lam,
                        "length": 1,
                    },
                    cfg,
                )
            )
        if p["long"]:
            long_rows.append(
                (
                    {
                        "role": "student",
                        "trial": s,
                        "init": "random",
                        "optimizer": "sgd",
                        "duration": 1.0,
                        "length": p["long"],
                    },
                    StudentConfig(**fresh, epochs=p["long"] * steps),
                )
            )
        for opt, ks in p["durations"].items():
            for k in ks:
                cfg = StudentConfig(
                    **{
                        **fresh,
                        "optimizer": opt,
                        "weight_decay": 0.0,
                        "lr": st["lr" if opt == "sgd" else "adam_lr"],
                    },
                    epochs=round(k * st["images"] / base),
                )
                long_rows.append(
                    (
                        {
                            "role": "student",
                            "trial": s,
                            "init": "random",
                            "optimizer": opt,
                            "duration": float(k),
                            "length": 1,
                        },
                        cfg,
                    )
                )
    rows += table1_rows + lambda_rows + long_rows
    return Plan(
        "optimization",
        profile,
        rows,
        {**p, "seeds": seeds, "table1_seeds": table1, "dataset": dataset},
    )


def init_effect(profile: str = "budget") -> str:
    """What Table 1 measured at `profile` of a student started at its teacher's initial weights (as
    the stored students of chapters 3 and 4 were), for their setup tables; a sentence saying so when
    its runs are not in the store (a smoke sweep reaches this chapter last)."""
    main = plan(profile)
    try:
        results = runs.run_all(main.configs, store_only=True, progress=False)
    except store.StoreMiss:
        return (
            "Chapter 7's Table 1 measures what that does (its runs are not in this result store "
            "yet)"
        )
    h9 = table1(main.table(results))
    return (
        "Chapter 7's Table 1 measures what that does at our scale (other networks: LayerNorm "
        f"PreResNet-8s): test agreement {h9.checks[0].here}, test KL {h9.checks[1].here}, so H9 is "
        f"{h9.status} there"
    )


def _pair(students: pd.DataFrame, a: dict, b: dict, col: str = "train_agreement") -> v.Interval:
    return v.paired(students, a, b, col)


def findings(table: pd.DataFrame, scope: str = SCOPE) -> list[v.Finding]:
    """H7 (longer training and Adam help little) and H8 (a sharp threshold in lambda; a loss barrier
    below it, none above) on paired per-trial differences of train agreement (on the distillation
    data, as the paper's Fig. 6) and loss barriers (`surface`), then H9 (`table1`)."""
    table = table if "length" in table else table.assign(length=1)
    everyone, teachers = table[table.role == "student"], table.role == "teacher"
    students = everyone[everyone.length == 1]
    moved = length_control(everyone)
    default = {"optimizer": "sgd", "duration": 1.0, "lam": 0.0}
    long_ = students[students.duration > 1]
    ks = sorted(set(long_[long_.optimizer == "sgd"].duration))
    # Adam against SGD at the lengths both ran (budget runs Adam at the shorter length only)
    both_ks = sorted(set(ks) & set(long_[long_.optimizer == "adam"].duration))
    both = pd.concat([students[(students.lam == 0)], long_])
    k1, k2 = ks[0], ks[-1]
    gain1 = _pair(both, default, {"optimizer": "sgd", "duration": k1})
    gain2 = _pair(both, default, {"optimizer": "sgd", "duration": k2})
    checks = [
        v.Check(
            f"SGD without weight decay, {k1:g}× longer, raises train agreement",
            "Fig. 6a, §6.2",
            "+2.3 pt (3.3×: 79.0 → 81.3 %)",
            gain1.text(),
            v.rises(gain1),
        ),
        v.Check(
            f"{k2:g}× longer training gains only a few points (at most {FEW * 100:g} pt, our "
            "margin)",
            *HEADLINES["H7"],
            gain2.text(),
            v.at_most(gain2, FEW),
            value=f"{k2:g}× longer: {gain2.short()}",
            # "only marginally" is the claim; that longer training helps at all (first) is not
            headline=True,
        ),
    ]
    for k in both_ks:
        d = _pair(long_, {"optimizer": "sgd", "duration": k}, {"optimizer": "adam", "duration": k})
        checks.append(
            v.Check(
                f"Adam below SGD at equal length ({k:g}×)",
                "Fig. 6a, §6.2",
                "−0.8 pt (3.3×), −0.5 pt (16.7×)",
                f"Adam − SGD {d.text()}",
                v.falls(d),
            )
        )
    # H7 is about training length, so its gate is the teachers and the longest runs: if even those
    # still move, how much longer training helps is not settled. H8's gate is the teachers and the
    # lambda runs.
    # Fig. 6's default students (the trials with longer arms): is there a gap to close at all?
    base = students[(students.init == "random") & (students.lam == 0) & (students.duration == 1)]
    h7_caveat, h8_caveat = no_gap(base[base.trial.isin(long_.trial)].train_agreement)
    h7 = v.Finding(
        "H7",
        "Longer training or another optimizer helps only marginally",
        checks,
        scope,
        v.convergence(table[teachers | (table.duration == k2)]),
        h7_caveat,
    )
    lam = students[students.lam.notna()]
    x0, x1, x2 = THRESHOLD_LAMS
    low = _pair(lam, {"lam": x0}, {"lam": x1})
    step = _pair(lam, {"lam": x1}, {"lam": x2})
    at = {x: lam[lam.lam == x].set_index("trial").train_agreement for x in THRESHOLD_LAMS}
    trials = at[x0].index.intersection(at[x1].index).intersection(at[x2].index)  # ran all three
    sharp = v.interval(at[x2][trials] - 2 * at[x1][trials] + at[x0][trials])
    near = v.interval(lam[lam.lam == 0.5].train_agreement)
    planes = lam[lam.loss_barrier.notna()] if "loss_barrier" in lam else lam.iloc[:0]
    basins = []
    if len(planes):
        # A barrier is >= 0 by construction, so a t interval (which can reach below 0) does not fit
        # it: each check counts the trials above BASIN_TOLERANCE, the one threshold for "a ridge"
        # both ways.
        lo, hi = planes.lam.min(), planes.lam.max()
        barrier = planes.loss_barrier.where(planes.loss_ridge > RIDGE_FLOOR, 0.0)
        low_b, high_b = (barrier[planes.lam == x] for x in (lo, hi))

        def said(b: pd.Series) -> str:
            above = int((b > BASIN_TOLERANCE).sum())
            return (
                f"barrier above {BASIN_TOLERANCE * 100:.0f} % of the student's excess loss (and "
                f"above {RIDGE_FLOOR:g} nats) in {above} of {len(b)} trials (medians, each taken "
                f"over the trials on its own: barrier {b.median() * 100:,.0f} %"
                f"{ridge_nats(planes.loc[b.index])})"
            )

        basins = [
            v.Check(
                f"λ = {lo:g}: the student ends in another basin (a loss barrier on the straight "
                "path to the teacher)",
                "Fig. 6c, §6.2",
                "a distinct, sub-optimal basin",
                said(low_b),
                v.every_trial(low_b, BASIN_TOLERANCE),
            ),
            v.Check(
                f"λ = {hi:g}: the student ends in the teacher's basin (no barrier)",
                "Fig. 6c, §6.2",
                "the teacher's basin (at λ ≥ 0.375)",
                said(high_b),
                {v.HOLDS: v.FAILS, v.FAILS: v.HOLDS}.get(
                    v.every_trial(high_b, BASIN_TOLERANCE), v.INCONCLUSIVE
                ),
            ),
        ]
    h8 = v.Finding(
        "H8",
        "Optimization is the root cause: a student started close enough to the teacher converges "
        "to it, otherwise it lands in a worse basin",
        [
            v.guarded(
                v.Check(
                    f"a sharp threshold at small λ: the rise from λ = {x1:g} to {x2:g} exceeds the "
                    f"rise from {x0:g} to {x1:g}",
                    *HEADLINES["H8"],
                    f"(λ {x1:g} → {x2:g}) {step.text()}, (λ {x0:g} → {x1:g}) {low.text()}; "
                    + sharp.here("difference "),
                    v.rises(sharp),
                    value=f"difference of the two rises {sharp.short()}",
                ),
                sharp.mean,
                moved.get("train_agreement"),
            ),
            v.guarded(
                v.Check(
                    "λ = 0.5 matches the teacher on the distillation data",
                    "Fig. 6b, §6.2",
                    "≥ 99.5 %",
                    near.text(unit=" %", signed=False),
                    v.at_least(near, CEILING),
                ),
                near.mean - CEILING,
                moved.get("train_agreement"),
                level=True,
                metric="train agreement",
                of="the default (λ = 0) student",
            ),
            *basins,
            v.Check(
                f"λ = {x1:g} gains little over λ = {x0:g} (at most {FEW * 100:g} pt, our margin)",
                "Fig. 6b, §6.2",
                "80.4 % (≈ λ = 0's 79.0 %)",
                f"λ {x0:g} → {x1:g} {low.text()}",
                v.at_most(low, FEW),
                core=False,
            ),
            _steepest(lam),
        ],
        scope,
        v.convergence(table[teachers | table.lam.notna()]),
        h8_caveat,
    )
    return [h7, h8, table1(table, scope, moved)]


def ridge_nats(planes: pd.DataFrame) -> str:
    """', ridge 15.3 nats, the student's excess loss over its teacher 0.383 nats': the medians, each
    over the students of `planes` on its own, of the path's ridge and of the student's excess loss
    over its teacher (the tau^2-scaled loss; the excess is the ridge over the barrier, where a
    barrier was found), so that a large ratio over a tiny excess reads as what it is; '' where no
    ridge was measured."""
    ridge = planes.loss_ridge.dropna()
    if ridge.empty:
        return ""
    excess = (planes.loss_ridge / planes.loss_barrier).where(planes.loss_barrier > 0).dropna()
    over = f", the student's excess loss over its teacher {excess.median():.3g} nats"
    return f", ridge {ridge.median():.3g} nats" + (over if len(excess) else "")


def no_gap(default: pd.Series) -> tuple[str, str]:
    """H7's and H8's caveats where Fig. 6's default students (their train agreement per trial,
    `default`) already match their teachers on their distillation data (a mean of at least CEILING,
    the paper's "matches" at lambda >= 0.5): Fig. 6a's premise, a gap for optimization to close, is
    then absent, so H7's checks and H8's lambda = 0.5 level hold without telling optimization apart
    from anything. ('', '') where there is a gap. A reading added after the budget runs were seen:
    it changes no outcome."""
    if default.empty or default.mean() < CEILING:
        return "", ""
    # two decimals: at one, a mean 0.03 points short of 100 % would read as 100.0 %
    level = f"{default.mean() * 100:.2f} % of the augmented images in their distillation batches"
    after = "(A reading added after the runs were seen; the verdict is the fixed rules'.)"
    return (
        "There is no train-agreement gap to close at this scale: the default students already "
        f"agree with their teachers on {level} (the paper's: {PAPER_6A[('sgd', 1)]:.1f} %), which "
        f"leaves longer training {(1 - default.mean()) * 100:.2f} points to add: here H7's checks "
        f"cannot tell optimization that stalls from a gap that is not there. {after}",
        f"λ = 0's students already agree with their teachers on {level}, so λ = 0.5's match says "
        f"nothing about a threshold; the basin checks still test the claim. {after}",
    )


def length_control(students: pd.DataFrame) -> dict[str, v.Interval]:
    """How far doubling the default student's steps moved its train and test agreement, paired by
    trial ({} when the profile runs no length control)."""
    default = students[
        (students.init == "random") & (students.optimizer == "sgd") & (students.duration == 1)
    ]
    if default.length.max() == 1:
        return {}
    return v.length_moves(
        default,
        {"length": 1},
        {"length": int(default.length.max())},
        ("train_agreement", "agreement"),
    )


def steepness(agreement: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per row (a trial; columns: lambdas), the steepest rise of train agreement between
    neighbouring lambdas as a multiple of the average rise from the first lambda to the last (NaN
    where there is no net rise), and where it lies."""
    lams = sorted(agreement.columns)
    slopes = pd.DataFrame(
        {(a, b): (agreement[b] - agreement[a]) / (b - a) for a, b in zip(lams, lams[1:])}
    )
    average = (agreement[lams[-1]] - agreement[lams[0]]) / (lams[-1] - lams[0])
    return slopes.max(axis=1) / average.where(average > 0), slopes.idxmax(axis=1)


def _steepest(lam: pd.DataFrame) -> v.Check:
    """Where the threshold lies, wherever that is (a context check, added after the first budget
    runs were seen, so post hoc and counted toward no verdict: the core check tests the paper's
    location)."""
    agreement = lam.pivot_table(index="trial", columns="lam", values="train_agreement").dropna()
    ratio, where = steepness(agreement)
    # the paper's ratio on the same lambdas (budget cuts 0.875 and 1)
    paper = pd.DataFrame([{x: PAPER_6B[x] for x in agreement.columns if x in PAPER_6B}])
    paper_ratio, (a, b) = (x.iloc[0] for x in steepness(paper))
    places = ", ".join(
        f"λ {x:g} → {y:g} ({n} trial{'s' * (n > 1)})" for (x, y), n in where.value_counts().items()
    )
    first, last = agreement.columns.min(), agreement.columns.max()
    what = (
        f"wherever it lies, the steepest rise between neighbouring λs is at least {STEEP_MARGIN:g} "
        f"times the average rise from λ = {first:g} to {last:g} (our margin)"
    )
    paper_says = f"{paper_ratio:.1f}× at λ {a:g} → {b:g}"
    flat = int(ratio.isna().sum())
    if flat:  # no net rise: a multiple of it means nothing
        return v.Check(
            what,
            "Fig. 6b, §6.2",
            paper_says,
            # where a flat curve is steepest is noise: no location is given
            f"undefined: train agreement does not rise from λ = {first:g} to {last:g} in {flat} "
            f"of {len(ratio)} trials",
            v.INCONCLUSIVE,
            core=False,
            why="no net rise to compare with",
        )
    steep = v.interval(ratio)
    return v.Check(
        what,
        "Fig. 6b, §6.2",
        paper_says,
        f"{steep.text(scale=1, unit='×', signed=False)} the average rise; steepest at {places}",
        v.at_least(steep, STEEP_MARGIN),
        core=False,
    )


def table1(table: pd.DataFrame, scope: str = SCOPE, moved: dict | None = None) -> v.Finding:
    """H9: a student started at its teacher's initial weights is no more faithful than one started
    at random (test agreement within ±TOLERANCE, KL within ±KL_TOLERANCE of the random student's);
    its stage CKA is, in the paper, slightly higher (context: the paper's CKA gaps are within one
    standard deviation of its 10 trials)."""
    table = table if "length" in table else table.assign(length=1)
    students = _table1_students(table)
    rand, shared = {"init": "random"}, {"init": "shared"}
    agree = v.paired(students, rand, shared, "agreement")
    by = students.set_index(["init", "trial"])
    both = by.loc["shared"].index.intersection(by.loc["random"].index)
    kl = v.interval(
        (by.loc["shared"].kl[both] - by.loc["random"].kl[both]) / by.loc["random"].kl[both]
    )
    checks = [
        v.guarded(
            v.Check(
                "test agreement: no difference between the teacher's initial weights and a random "
                "init",
                *HEADLINES["H9"],
                agree.here("shared − random "),
                v.within(agree, -v.TOLERANCE, v.TOLERANCE),
                value=f"shared − random {agree.short()}",
            ),
            v.TOLERANCE - abs(agree.mean),
            (moved or {}).get("agreement"),
        ),
        v.Check(
            f"test KL: no difference (within ±{KL_TOLERANCE * 100:.0f} % of the random-init "
            "student's)",
            "Table 1, §6.2",
            "+0.2 % (0.838 vs 0.836)",
            f"mean over trials of (shared − random) / random {kl.text(100, 1, ' %')}",
            v.within(kl, -KL_TOLERANCE, KL_TOLERANCE),
        ),
    ]
    for k in (1, 2, 3):
        d = v.paired(students, rand, shared, f"cka_stage{k}")
        paper = {1: "+0.012", 2: "+0.012", 3: "+0.005"}[k]
        checks.append(
            v.Check(
                f"stage-{k} CKA slightly higher with the teacher's initial weights",
                "Table 1, §6.2",
                paper,
                f"shared − random {d.text(1, 3, '')}",
                v.rises(d),
                core=False,
            )
        )
    gate = table[(table.role == "teacher") | table.index.isin(students.index)]
    return v.Finding(
        "H9",
        "Starting from the teacher's initial weights gives no functional benefit (only slightly "
        "more similar representations)",
        checks,
        scope,
        v.convergence(gate),
    )


def _table1_students(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1's students: the default recipe at its own length, randomly started or started at
    the teacher's initial weights."""
    students = table[
        (table.role == "student")
        & table.init.isin(["random", "shared"])
        & (table.duration == 1)
        & (table.length == 1)
    ]
    return students[students.lam.isna() | (students.lam == 0)]


def h9_reach(table: pd.DataFrame) -> str:
    """Where the length control moved test agreement by at least H9's margin, the sentence that
    says H9's agreement check cannot hold at this profile: its effect, the margin less the mean's
    distance from 0, is then never larger than the movement, so the guard withdraws any 'holds'.
    With the trials a margin-wide interval would need at the paired spread seen here. '' where the
    movement is within the margin (or no control ran)."""
    table = table if "length" in table else table.assign(length=1)
    moved = length_control(table[table.role == "student"]).get("agreement")
    if moved is None or abs(moved.mean) < v.TOLERANCE:
        return ""
    d = v.paired(_table1_students(table), {"init": "random"}, {"init": "shared"}, "agreement")
    sd = d.half * math.sqrt(d.n) / v.t975(d.n - 1)
    inside = (  # the whole interval inside the margin needs a half-width of the margin less |mean|
        f", about {v.trials_for(sd, v.TOLERANCE - abs(d.mean))} for an interval around the "
        f"present mean ({d.mean * 100:+.1f} pt) to fit inside ±{v.TOLERANCE * 100:g}"
        if abs(d.mean) < v.TOLERANCE
        else ""
    )
    return (
        f"The length control moved test agreement by {moved.mean * 100:+.1f} pt, more than H9's "
        f"±{v.TOLERANCE * 100:g}-point margin itself. More trials would narrow the interval (at "
        f"the spread of the paired differences here, sd {sd * 100:.1f} pt over {d.n} trials, about "
        f"{v.trials_for(sd, v.TOLERANCE)} trials to a half-width of {v.TOLERANCE * 100:g} points"
        f"{inside}), but the check "
        "can hold only once that movement is inside the margin, with students nearer convergence: "
        "until then a difference within the margin is closer to 0 than the movement, and the "
        "guard withdraws it. (A reading of the fixed rules, added after the runs were seen.)"
    )
