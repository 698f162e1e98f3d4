"""Chapter 4, Figs. 3, 11 and 13 (H4, H15): does richer distillation data make the student match its teacher?

The teachers are chapter 3's pool (same configs, same runs), trained with crop + flip only. Trial i distills the
m-teacher ensemble `self_vs_ensemble.ensembles(...)[i]` into one student under each policy of `POLICIES`; every
student takes the same number of optimizer steps. Trial i's control is trial i-1's ensemble (disjoint from its own).

Stand-ins where the paper's data is not available offline: no SN-GAN is trained, so the "GAN" policy adds real
training images the teachers never saw, at the paper's ratio of about one extra image to four; SVHN (the paper's
out-of-distribution set) is replaced by Fashion-MNIST, resized to 32 x 32 and repeated over 3 channels.
"""

from dataclasses import replace

import pandas as pd

from .. import verdict as v
from ..config import StudentConfig
from ..plan import Plan, check_profile, check_seeds, epochs_for
from . import self_vs_ensemble as sve

# name -> (label, augmentation policy, temperature, distillation-set addition). Each policy adds to crop + flip
# (the paper's Fig. 3, App. A.1); tau = 1 unless labelled, as in the paper's legend. "extra": real unseen images (for GAN samples);
# "ood": out-of-distribution images, no label.
POLICIES = {
    "baseline": ("Baseline", "crop_flip", 1.0, None),
    "baseline_t4": ("Baseline (τ=4)", "crop_flip", 4.0, None),
    "rotation": ("Rotation", "rotation", 1.0, None),
    "vflip": ("Vertical flip", "vflip", 1.0, None),
    "color_jitter": ("ColorJitter", "color_jitter", 1.0, None),
    "combined": ("Combined", "combined", 1.0, None),
    "mixup": ("MixUp", "mixup", 1.0, None),
    "mixup_t4": ("MixUp (τ=4)", "mixup", 4.0, None),
    "extra_t4": ("Extra real (τ=4)", "crop_flip", 4.0, "extra"),
    "ood": ("OOD", "crop_flip", 1.0, "ood"),
    "noise": ("Noise", "noise", 1.0, None),
}
# Fig. 3's read-out (5 x PreResNet-56, CIFAR-100, 3 trials; figure values, about ±1 pt): accuracy, agreement in %.
PAPER = {"baseline": (72.5, 79.0), "baseline_t4": (74.5, 83.5), "rotation": (73.5, 81.5), "vflip": (74.0, 81.5),
         "color_jitter": (74.5, 82.5), "combined": (73.0, 83.5), "mixup": (75.0, 83.5), "mixup_t4": (74.5, 85.5),
         "extra_t4": (74.5, 83.5), "ood": (72.5, 79.5), "noise": (71.5, 78.5)}
VGG_POLICIES = ("baseline", "rotation", "vflip", "color_jitter", "combined", "mixup")  # Fig. 13

# The student recipe at each scale (the teachers' is chapter 3's). Units: images (extra, ood, images of student
# steps; `images` must be a whole number of epochs of every distillation set), learning rates per step. `ms` are the
# ensemble sizes run; trials per m are at most pool // m. `vgg`: run Fig. 13 (its own VGG-16 teacher pool).
RECIPE = {
    "smoke": dict(seeds=(0, 1), ms=(1,), extra=1_000, ood_dataset="fashion_mnist", ood=1_000, images=4_000, batch=64,
                  lr=0.05, evals=2, vgg=False),
    "budget": dict(seeds=(0, 1, 2), ms=(5,), extra=600, ood_dataset="fashion_mnist", ood=600, images=78_000,
                   batch=128, lr=0.05, evals=4, vgg=False),
    # Chapter 3's gpu pool (9 PreResNet-20 teachers on the full set); 2-teacher ensembles, since 3 trials of 3 would
    # cost 24 min; 5 epochs of student steps (1x the teachers' steps) and 12.5k OOD images (the paper's 1:4 ratio)
    "gpu": dict(seeds=(0, 1, 2), ms=(2,), extra=None, ood_dataset="fashion_mnist", ood=12_500, images=50_000 * 5,
                batch=128, lr=0.05, evals=4, vgg=False),
    "paper": dict(seeds=(0, 1, 2), ms=(1, 3, 5), extra=None, ood_dataset="svhn", ood=10_000, images=50_000 * 300,
                  batch=128, lr=0.05, evals=30, vgg=True),
}
FINDINGS = ("H4", "H15")
SCOPE = "PreResNet-8, CIFAR-10 (JPEG q75), 5-teacher ensembles of 2k-image teachers, budget scale"
CLOSE = 0.03  # "independent students have nearly as good agreement": within 3 points of the student's own


def plan(profile: str = "budget", seeds: tuple[int, ...] | None = None, dataset: str | None = None) -> Plan:
    """Figs. 3 and 11 (and 13 at `paper`): every policy, for each m, from chapter 3's teacher pool."""
    check_profile(profile, RECIPE)
    p, t = RECIPE[profile], sve.teacher_recipe(profile, converged=False)
    dataset = dataset or sve.default_dataset(profile)
    seeds = check_seeds(seeds if seeds is not None else p["seeds"])
    pools = {t["model"]: sve.teacher_pool(profile, dataset, converged=False)}
    if p["vgg"]:  # Fig. 13: VGG-16 teachers on the same images; the VGG recipe is presumably the ResNet one [U]
        pools["vgg16"] = [replace(cfg, model="vgg16") for cfg in pools[t["model"]]]
    rows = [({"role": "teacher", "member": k, "arch": arch}, cfg) for arch, pool in pools.items()
            for k, cfg in enumerate(pool)]
    for arch, pool in pools.items():
        rows += _students({**p, "ms": (5,)} if arch == "vgg16" else p, pool, seeds,
                          VGG_POLICIES if arch == "vgg16" else POLICIES, t["teacher_size"])
    return Plan("augmentation", profile, rows, {**p, "seeds": seeds, "dataset": dataset, "teachers": t})


def _students(p: dict, pool: list, seeds: tuple[int, ...], policies, teacher_size: int | None) -> list:
    rows = []
    base = teacher_size or 50_000
    for m in p["ms"]:
        trials = seeds[:len(pool) // m]
        teams = sve.ensembles(pool, m, len(trials))
        for name in policies:
            label, policy, tau, addition = POLICIES[name]
            if addition == "extra" and not (p["extra"] and teacher_size):
                continue  # no unseen real images when the teachers train on the whole set (paper scale)
            extra = p["extra"] if addition == "extra" else 0
            ood = dict(ood_dataset=p["ood_dataset"], ood_size=p["ood"]) if addition == "ood" else {}
            examples = base + extra + (p["ood"] if ood else 0)
            for i, s in enumerate(trials):
                t0 = teams[i][0]
                cfg = StudentConfig(dataset=t0.dataset, model=t0.model, width=t0.width, test_size=t0.test_size,
                                    train_size=(teacher_size + extra) if teacher_size else None, seed=s,
                                    teachers=teams[i], control=teams[i - 1] if len(trials) > 1 else (),
                                    augment=policy, temperature=tau, batch_size=p["batch"], lr=p["lr"],
                                    epochs=epochs_for(p["images"], examples), evals=p["evals"], **ood)
                rows.append(({"role": "student", "arch": t0.model, "m": m, "policy": name, "trial": s}, cfg))
    return rows


def plans(profile: str = "budget") -> list[Plan]:
    """What the chapter shows: one plan."""
    return [plan(profile)]


def _name(policy: str) -> str:
    return POLICIES[policy][0]


def _diff(students: pd.DataFrame, a: str, b: str, col: str) -> v.Interval:
    """Paired interval of col(policy b) - col(policy a) over trials."""
    return v.paired(students, {"policy": a}, {"policy": b}, col)


def _best(students: pd.DataFrame, col: str) -> str:
    return students.groupby("policy")[col].mean().idxmax()


def _near_top(at: pd.DataFrame, policy: str) -> v.Check:
    """`policy` at or near the top for agreement, against every other policy (none chosen by its sample mean): holds
    when no other policy is more than TOLERANCE ahead (every interval's upper end), fails when one is significantly."""
    ds = {p: _diff(at, policy, p, "agreement") for p in sorted(set(at.policy) - {policy})}
    worst = max(ds, key=lambda p: ds[p].mean)
    outcome = v.HOLDS if all(d.hi <= v.TOLERANCE for d in ds.values()) else \
        v.FAILS if any(d.lo > v.TOLERANCE for d in ds.values()) else v.INCONCLUSIVE
    return v.Check(f"{_name(policy)} at or near the top for agreement (within {v.TOLERANCE * 100:.1f} pt of every "
                   "other policy)", "Fig. 3, §5.1", "86 %, the highest (text)",
                   f"the closest rival, {_name(worst)} − {_name(policy)}: {ds[worst].text()}", outcome)


def _calibration(g: pd.DataFrame, m: int) -> v.Check:
    """H15 at one m: the most faithful policy is the best calibrated. Holds when one policy is significantly ahead of
    every other in agreement and its ECE is below every other's (each interval's upper end <= 0); fails when a policy
    significantly ahead in agreement is significantly worse calibrated than another; else inconclusive."""
    faithful = _best(g, "agreement")
    others = sorted(set(g.policy) - {faithful})
    ahead = all(_diff(g, p, faithful, "agreement").lo > 0 for p in others)
    ece = {p: _diff(g, p, faithful, "ece") for p in others}
    worst = max(ece, key=lambda p: ece[p].mean)
    outcome = v.INCONCLUSIVE if not ahead else v.HOLDS if all(d.hi <= 0 for d in ece.values()) else \
        v.FAILS if any(d.lo > 0 for d in ece.values()) else v.INCONCLUSIVE
    here = (f"{_name(faithful)} {'is' if ahead else 'is not'} significantly ahead of every other policy in agreement; "
            f"its ECE minus the closest rival's ({_name(worst)}): {ece[worst].text(scale=1, digits=3, unit='')}")
    return v.Check(f"m = {m}: the most faithful policy has the lowest ECE", "§7, Fig. 11", "always, with ensemble "
                   "teachers", here, outcome)


def findings(table: pd.DataFrame, scope: str = SCOPE) -> list[v.Finding]:
    """H4 (augmentation barely helps; temperature matters more) at the largest m run, and H15 for every m > 1. Every
    comparison is fixed in advance (none is chosen by its sample mean) or made against every other policy."""
    students = table[(table.role == "student") & (table.arch == table[table.role == "teacher"].arch.iloc[0])]
    unconverged = v.convergence(table)
    m = int(students.m.max())
    at = students[students.m == m]
    tempering = _diff(at, "baseline", "baseline_t4", "agreement")
    base = at.set_index(["policy", "trial"]).agreement
    gain = (base["baseline_t4"] - base["baseline"]) - (base["mixup_t4"] - base["baseline_t4"])
    more = v.interval(gain)
    checks = [
        _near_top(at, "mixup_t4"),
        v.Check("Baseline (τ=4) well above Baseline (τ=1) in agreement", "§5.1, Fig. 3",
                "+5.5 pt (84.5 vs ≈ 79 %)", tempering.text(), v.rises(tempering)),
        v.Check("tempering adds more agreement than the best augmentation adds on top of it", "§5.1",
                "+5.5 pt (τ = 1 → 4) vs +1.5 pt (Baseline → MixUp at τ = 4)",
                f"(Baseline τ4 − τ1) − (MixUp τ4 − Baseline τ4) {more.text()}", v.rises(more))]
    for bad in ("noise", "ood"):
        if bad in set(at.policy):
            for col in ("agreement", "accuracy"):
                d = _diff(at, "baseline", bad, col)
                checks.append(v.Check(f"{_name(bad)} below Baseline in {col}", "Fig. 3, §5.1",
                                      "below on all metrics", d.text(), v.falls(d)))
    faithful, accurate = _diff(at, "mixup", "mixup_t4", "agreement"), _diff(at, "mixup", "mixup_t4", "accuracy")
    checks += [
        v.Check("the best accuracy is not the best fidelity: MixUp at τ = 4 (the paper's most faithful) agrees more than "
                "at τ = 1 (among its most accurate)", "§5.1, Fig. 3", "+2 pt (85.5 vs 83.5 %, read-out ±1)",
                faithful.text(), v.rises(faithful)),
        v.Check("... and is not more accurate", "§5.1, Fig. 3", "−0.5 pt (74.5 vs 75 %, read-out ±1)",
                accurate.text(), v.at_most(accurate, v.TOLERANCE))]
    margin = v.interval(at.assign(gap=at.agreement - at.control_agreement).groupby("trial").gap.mean())
    checks.append(v.Check(f"the independent-student control agrees nearly as well (within our {CLOSE * 100:.0f}-point "
                          "threshold)", "§5.1, Fig. 11", "often nearly as good", f"student − control, mean over "
                          f"policies {margin.text()}", v.at_most(margin, CLOSE), core=False))
    out = [v.Finding("H4", "More or different augmentation barely helps fidelity; logit tempering matters more; "
                     "the best accuracy is not the best fidelity", checks, scope, unconverged)]
    calib = [_calibration(g, int(mm)) for mm, g in students.groupby("m") if mm > 1]  # the claim is about ensembles
    calib = calib or [v.Check("the most faithful policy has the lowest ECE", "§7, Fig. 11", "with ensemble teachers",
                              "not testable here: no ensemble (m > 1) at this scale", v.INCONCLUSIVE)]
    out.append(v.Finding("H15", "With ensemble teachers, the highest-fidelity student is the best calibrated", calib,
                         scope, unconverged))
    return out
