"""Chapter 5, Figs. 4, 8 and 9 (H5, H11): is it the recycled data? And what does temperature do?

The training split is cut into halves D0 and D1 (`data.halves`, seeded). A pool of teachers trains on a stratified
subset of D0 only. Three students, none of which sees a true label, distill trial i's m-teacher ensemble
(`self_vs_ensemble.ensembles`) on: s0, the teachers' own images (D0); s1, as many fresh images from D1; s0∪1, both
(half of each batch from each half, `train.union_indices`). Every student takes the same number of optimizer steps
and starts from an independent random init (`plan.fresh_init`). Trial i's control is trial i-1's ensemble. Fig. 9's
temperature x ensemble-size grid is run on s0∪1's data (the paper's split is [U]).
"""

import pandas as pd

from .. import verdict as v
from ..config import StudentConfig
from ..plan import Plan, check_profile, check_seeds, epochs_for, fresh_init
from . import self_vs_ensemble as sve

SPLITS = {"s0": "D0", "s1": "D1", "s01": "D0+D1"}  # student -> the part of the training split it distills on
# Fig. 9 (PreResNet-20 teachers and students, CIFAR-100 subsets): test accuracy and agreement, % (printed values).
PAPER_HEAT = {
    "accuracy": {1: (59.38, 61.33, 59.87, 59.16), 3: (59.65, 62.78, 62.12, 61.38), 5: (60.25, 63.21, 62.18, 61.45)},
    "agreement": {1: (58.04, 65.31, 65.24, 65.27), 3: (63.91, 72.77, 72.38, 71.56), 5: (67.16, 74.77, 75.32, 74.92)},
}
PAPER_TAUS = (1, 4, 8, 16)

# The recipe at each scale. Units: images (teacher_size per half, images of student steps: a whole number of epochs
# of both one half and two), epochs, learning rates per step; `batch` is the students'. The teachers' recipe is
# chapter 3's, on D0. `taus` run for every split and m; `heat_taus` add Fig. 9's columns on s0∪1 only.
RECIPE = {
    "smoke": dict(seeds=(0, 1), pool=2, ms=(1,), taus=(1.0, 4.0), heat_taus=(8.0,), images=4_000, batch=64, evals=2),
    "budget": dict(seeds=(0, 1, 2), pool=9, ms=(1, 3), taus=(1.0, 4.0), heat_taus=(8.0, 16.0), images=60_000,
                   batch=128, evals=4),
    # 9 PreResNet-20 teachers on the whole of D0 (25k images, 10 epochs at batch 256); students of 6 epochs of 25k
    # (1.2x the teachers' steps); no extra heat-map taus
    "gpu": dict(seeds=(0, 1, 2), pool=9, ms=(1, 3), taus=(1.0, 4.0), heat_taus=(), images=6 * 25_000, batch=128,
                evals=5),
    "paper": dict(seeds=(0, 1, 2), pool=15, ms=(1, 3, 5), taus=(1.0, 4.0, 8.0, 16.0), heat_taus=(), images=300 * 25_000,
                  batch=128, evals=30),
}
FINDINGS = ("H5", "H11")
SCOPE = "PreResNet-8, CIFAR-10 (JPEG q75), teachers on 2k images of one half, budget scale"


def plan(profile: str = "budget", seeds: tuple[int, ...] | None = None, dataset: str | None = None) -> Plan:
    """Figs. 4 and 9 (chapter 5): students on the teachers' half, the fresh half and both, at several tau and m."""
    check_profile(profile, RECIPE)
    p, t = RECIPE[profile], sve.teacher_recipe(profile, converged=False)
    seeds = check_seeds(seeds if seeds is not None else p["seeds"])
    pool = sve.teacher_pool(profile, dataset, part="D0", members=p["pool"], converged=False)
    rows = [({"role": "teacher", "member": k}, cfg) for k, cfg in enumerate(pool)]
    half = t["teacher_size"]  # None: the whole half
    block = max(p["ms"])  # trial i takes its ensembles of every m from pool members [i*block, (i+1)*block)
    for m in p["ms"]:
        trials = seeds[:len(pool) // block]
        teams = sve.ensembles(pool, m, len(trials), stride=block)
        cells = [(s, tau) for s in SPLITS for tau in p["taus"]] + [("s01", tau) for tau in p["heat_taus"]]
        for split, tau in cells:
            examples = (half or pool[0].examples) * (2 if split == "s01" else 1)
            for i, s in enumerate(trials):
                t0 = teams[i][0]
                cfg = StudentConfig(dataset=t0.dataset, model=t0.model, width=t0.width, test_size=t0.test_size,
                                    train_part=SPLITS[split], train_size=half, seed=s, init_seed=fresh_init(s),
                                    teachers=teams[i], control=teams[i - 1] if len(trials) > 1 else (), temperature=tau,
                                    batch_size=p["batch"], lr=t["lr"],
                                    epochs=epochs_for(p["images"], examples), evals=p["evals"])
                rows.append(({"role": "student", "m": m, "split": split, "tau": tau, "trial": s}, cfg))
    return Plan("recycling", profile, rows, {**p, "seeds": seeds, "dataset": pool[0].dataset, "teachers": t})


def plans(profile: str = "budget") -> list[Plan]:
    """What the chapter shows: one plan."""
    return [plan(profile)]


def findings(table: pd.DataFrame, scope: str = SCOPE) -> list[v.Finding]:
    """H5 (fresh data: more faithful, less accurate; the union best) at tau = 4 and the largest m; H11 (tau = 4 is
    best for accuracy, agreement rises with m at every tau) on s0∪1. Every comparison is fixed in advance."""
    students = table[table.role == "student"]
    unconverged = v.convergence(table)
    m, m1 = int(students.m.max()), int(students.m.min())
    at = {"m": m, "tau": 4.0}
    s0, s1, s01 = ({**at, "split": k} for k in SPLITS)
    checks = []
    for col, what, paper, rule in (
            ("accuracy", "s0 (teacher data) more accurate than s1 (fresh data)", "s0 higher", v.falls),
            ("agreement", "s1 agrees more than s0", "s1 higher", v.rises),
            ("kl", "s1 has lower KL than s0", "s1 lower", v.falls),
            ("ece", "s1 is better calibrated than s0 (lower ECE)", "s1 lower", v.falls)):
        d = v.paired(students, s0, s1, col)
        scale, digits, unit = (100, 1, " pt") if col in ("accuracy", "agreement") else (1, 3, "")
        checks.append(v.Check(what, "Fig. 4, §5.2", paper, f"s1 − s0 {d.text(scale, digits, unit)}", rule(d)))
    # s0∪1 against the paper's winner of each metric: s0 for accuracy, s1 for agreement
    for col, best in (("accuracy", s0), ("agreement", s1)):
        d = v.paired(students, best, s01, col)
        checks.append(v.Check(f"s0∪1 at least as good as {best['split']} in {col}", "Fig. 4, §5.2", "best of both",
                              f"s0∪1 − {best['split']} {d.text()} (s0∪1 sees each image half as often: every "
                              "student takes the same steps)", v.at_least(d, -v.TOLERANCE)))
    out = [v.Finding("H5", "Recycling the teachers' data is not the cause: fresh data raises fidelity a little but "
                     "lowers accuracy; the union is best", checks, scope, unconverged)]
    heat = students[students.split == "s01"]
    taus = sorted(set(heat.tau))
    steps = []
    for mm in sorted(set(heat.m)):
        ds = {tau: v.paired(heat, {"m": mm, "tau": tau}, {"m": mm, "tau": 4.0}, "accuracy") for tau in taus if tau != 4.0}
        worst = min(ds, key=lambda tau: ds[tau].mean)
        outcome = v.HOLDS if all(d.lo >= -v.TOLERANCE for d in ds.values()) else \
            v.FAILS if any(d.hi < -v.TOLERANCE for d in ds.values()) else v.INCONCLUSIVE
        steps.append(v.Check(f"m = {mm}: τ = 4 at least as accurate as every other τ", "Fig. 9",
                             "τ = 4 best in every row", f"τ = 4 − τ = {worst:g} (the closest): {ds[worst].text()}",
                             outcome))
    for tau in taus if m > m1 else ():
        d = v.paired(heat, {"m": m1, "tau": tau}, {"m": m, "tau": tau}, "agreement")
        steps.append(v.Check(f"τ = {tau:g}: agreement rises from m = {m1} to m = {m}", "Fig. 9",
                             "rises in every column", d.text(), v.rises(d)))
    if m > m1:
        d = v.paired(students, {"m": m1, "tau": 1.0, "split": "s0"}, {"m": m, "tau": 1.0, "split": "s0"}, "accuracy")
        steps.append(v.Check(f"at τ = 1 a {m}-teacher ensemble's student is no more accurate than a single "
                             "teacher's (s0)", "App. B.1", "no better", f"m = {m} − m = {m1}: {d.text()}",
                             v.at_most(d, v.TOLERANCE), core=False))
    out.append(v.Finding("H11", "Temperature: τ = 4 is best for accuracy; soft teachers' ensembles are easier to "
                         "match at every τ", steps, scope, unconverged))
    return out
