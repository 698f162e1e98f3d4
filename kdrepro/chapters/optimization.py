"""Chapter 7, Fig. 6a/b (H7, H8): is it the optimizer? Longer training, Adam, and starting near the teacher.

Self-distillation (m = 1) of LayerNorm PreResNets at tau = 4 with crop + flip, alpha = 0, as in the paper's §6.2.
Each trial has its own teacher; its control is the previous trial's teacher. Fig. 6a: the default student (SGD with
weight decay, `images` of steps) against SGD and Adam without weight decay trained `durations` times longer. Fig. 6b:
students initialised at lambda * teacher + (1 - lambda) * random, with the official code's learning rate
max(lr * (1 - lambda), 1e-6); lambda = 0 is the default student itself. Unlike the other chapters, students here take
different numbers of steps on purpose (training length is the variable); every comparison is between students of
one trial.
"""

import pandas as pd

from .. import verdict as v
from ..config import StudentConfig, TeacherConfig
from ..plan import Plan, check_profile, check_seeds, epochs_for, fresh_init
from . import self_vs_ensemble as sve

LAMBDAS = (0.0, 0.25, 0.375, 0.5, 0.75, 0.875, 1.0)  # Fig. 6b
# Fig. 6a (R20-LN, CIFAR-100, train agreement %, means of 3 trials) and Fig. 6b (train agreement % per lambda).
PAPER_6A = {("sgd", 1): 78.96, ("sgd", 3.3): 81.27, ("sgd", 16.7): 83.37, ("adam", 3.3): 80.47, ("adam", 16.7): 82.87}
PAPER_6B = {0.0: 78.96, 0.25: 80.39, 0.375: 97.55, 0.5: 99.65, 0.75: 99.57, 0.875: 99.91, 1.0: 100.0}

# The recipe at each scale. Units: images (teacher_size; `images` of student steps for the default run, a whole
# number of epochs of teacher_size), learning rates per step. `durations`: multiples of `images` for the longer
# runs (the paper: 1k and 5k epochs against 300, i.e. 3.3x and 16.7x). Teachers: chapter 3's recipe, LayerNorm.
RECIPE = {
    "smoke": dict(seeds=(0, 1), model="preresnet8", teacher_size=1_000, teacher_epochs=12, images=4_000,
                  durations=(2, 3), batch=64, lr=0.05, adam_lr=1e-3, temperature=4.0, evals=2, test_size=1_000),
    "budget": dict(seeds=(0, 1, 2), model="preresnet8", teacher_size=2_000, teacher_epochs=60, images=40_000,
                   durations=(3, 9), batch=128, lr=0.05, adam_lr=1e-3, temperature=4.0, evals=4, test_size=None),
    "paper": dict(seeds=(0, 1, 2), model="preresnet20", teacher_size=None, teacher_epochs=200, images=300 * 50_000,
                  durations=(10 / 3, 50 / 3), batch=128, lr=0.05, adam_lr=1e-3, temperature=4.0, evals=30,
                  test_size=None),
}
FINDINGS = ("H7", "H8")
SCOPE = "LayerNorm PreResNet-8 self-distillation at τ = 4, CIFAR-10 (JPEG q75), 2k-image teachers, budget scale"


def plan(profile: str = "budget", seeds: tuple[int, ...] | None = None, dataset: str | None = None) -> Plan:
    """Fig. 6a/b (chapter 7): longer training, Adam, and initialization near the teacher, for R20-LN-like nets."""
    check_profile(profile)
    p, t = RECIPE[profile], sve.RECIPE[profile]
    dataset = dataset or sve.default_dataset(profile)
    seeds = check_seeds(seeds if seeds is not None else p["seeds"])
    common = dict(dataset=dataset, model=p["model"], norm="layer", test_size=p["test_size"])
    teachers = {s: TeacherConfig(**common, train_size=p["teacher_size"], seed=s, subset_seed=s,
                                 epochs=p["teacher_epochs"], batch_size=t["teacher_batch"], lr=t["teacher_lr"],
                                 evals=t["evals"]) for s in seeds}
    rows = [({"role": "teacher", "trial": s}, cfg) for s, cfg in teachers.items()]
    base = p["teacher_size"] or 50_000
    for i, s in enumerate(seeds):
        student = dict(common, train_size=p["teacher_size"], seed=s, subset_seed=s, init_seed=fresh_init(s),
                       teachers=(teachers[s],),
                       control=(teachers[seeds[i - 1]],) if len(seeds) > 1 else (), temperature=p["temperature"],
                       batch_size=p["batch"], evals=p["evals"])
        default = StudentConfig(**student, lr=p["lr"], epochs=epochs_for(p["images"], base))
        rows.append(({"role": "student", "trial": s, "optimizer": "sgd", "duration": 1.0, "lam": 0.0}, default))
        for opt in ("sgd", "adam"):
            for k in p["durations"]:
                cfg = StudentConfig(**student, optimizer=opt, weight_decay=0.0, lr=p["lr" if opt == "sgd" else "adam_lr"],
                                    epochs=round(k * p["images"] / base))
                rows.append(({"role": "student", "trial": s, "optimizer": opt, "duration": float(k)}, cfg))
        for lam in LAMBDAS[1:]:
            cfg = StudentConfig(**student, lr=p["lr"], epochs=epochs_for(p["images"], base), init="interpolate",
                                init_lambda=lam, init_lr_scale=True)
            rows.append(({"role": "student", "trial": s, "optimizer": "sgd", "duration": 1.0, "lam": lam}, cfg))
    return Plan("optimization", profile, rows, {**p, "seeds": seeds, "dataset": dataset, "teachers": t})


def plans(profile: str = "budget") -> list[Plan]:
    """What the chapter shows: one plan."""
    return [plan(profile)]


def _pair(students: pd.DataFrame, a: dict, b: dict, col: str = "train_agreement") -> v.Interval:
    return v.paired(students, a, b, col)


def findings(table: pd.DataFrame, scope: str = SCOPE) -> list[v.Finding]:
    """H7 (longer training and Adam help little) and H8 (a sharp threshold in lambda), on paired per-trial
    differences of train agreement (on the distillation data, as the paper's Fig. 6)."""
    students, teachers = table[table.role == "student"], table.role == "teacher"
    default = {"optimizer": "sgd", "duration": 1.0, "lam": 0.0}
    long_ = students[students.lam.isna()]
    ks = sorted(set(long_.duration))
    both = pd.concat([students[(students.lam == 0)], long_])
    k1, k2 = ks[0], ks[-1]
    gain1 = _pair(both, default, {"optimizer": "sgd", "duration": k1})
    gain2 = _pair(both, default, {"optimizer": "sgd", "duration": k2})
    checks = [
        v.Check(f"SGD without weight decay, {k1:g}× longer, raises train agreement", "Fig. 6a, §6.2",
                "+2.3 pt (3.3×: 79.0 → 81.3 %)", gain1.text(), v.rises(gain1)),
        v.Check(f"... but {k2:g}× longer training gains only a few points (at most 5)", "Fig. 6a, §6.2",
                "+4.4 pt at 16.7× (79.0 → 83.4 %)", gain2.text(), v.at_most(gain2, 0.05))]
    for k in ks:
        d = _pair(long_, {"optimizer": "sgd", "duration": k}, {"optimizer": "adam", "duration": k})
        checks.append(v.Check(f"Adam below SGD at equal length ({k:g}×)", "Fig. 6a, §6.2",
                              "−0.8 pt (3.3×), −0.5 pt (16.7×)", f"Adam − SGD {d.text()}", v.falls(d)))
    # H7 is about training length, so its gate is the teachers and the longest runs: if even those still move, how
    # much longer training helps is not settled. H8's gate is the teachers and the lambda runs.
    h7 = v.Finding("H7", "Longer training or another optimizer helps only marginally", checks, scope,
                   v.convergence(table[teachers | (table.duration == k2)]))
    lam = students[students.lam.notna()]
    low = _pair(lam, {"lam": 0.0}, {"lam": 0.25})
    step = _pair(lam, {"lam": 0.25}, {"lam": 0.5})
    sharp = v.interval(lam[lam.lam == 0.5].set_index("trial").train_agreement
                       - 2 * lam[lam.lam == 0.25].set_index("trial").train_agreement
                       + lam[lam.lam == 0.0].set_index("trial").train_agreement)
    near = v.interval(lam[lam.lam == 0.5].train_agreement)
    h8 = v.Finding("H8", "Optimization is the root cause: a student started close enough to the teacher converges to "
                   "it, otherwise it lands in a worse basin", [
                       v.Check("a sharp threshold at small λ: the rise from λ = 0.25 to 0.5 exceeds the rise from "
                               "0 to 0.25", "Fig. 6b, §6.2", "+19.3 pt vs +1.4 pt", f"(λ 0.25 → 0.5) {step.text()}, "
                               f"(λ 0 → 0.25) {low.text()}; difference {sharp.text()}", v.rises(sharp)),
                       v.Check("λ = 0.5 matches the teacher on the distillation data", "Fig. 6b, §6.2", "≥ 99.5 %",
                               f"{near.mean:.1%} [{near.lo:.1%}, {near.hi:.1%}]", v.at_least(near, 0.995)),
                       v.Check("λ = 0.25 stays far from the teacher", "Fig. 6b, §6.2", "80.4 % (≈ λ = 0's 79.0 %)",
                               f"λ 0 → 0.25 {low.text()}", v.at_most(low, 0.05), core=False)],
                   scope, v.convergence(table[teachers | table.lam.notna()]))
    return [h7, h8]
