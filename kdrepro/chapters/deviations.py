"""Beyond the paper: how students deviate from their teachers (F1, F2).

Nagarajan, Menon, Bhojanapalli, Mobahi and Kumar, *On student-teacher deviations in distillation:
does it pay to disobey?* (NeurIPS 2023) make two claims about self-distilled students, tested here
on this book's runs:

* F1: the student *exaggerates* its teacher's confidence. Where the teacher is unsure,
  the student is even less sure; where the teacher is confident, the student is about as sure.
* F2: a student trained on the one-hot labels and switched to distillation midway through
  training recovers much of distillation's gain in test accuracy over a student trained on one-hot
  labels throughout. The follow-up says *much*; the check tests *most* (more than half: the switched
  student above the midpoint of the one-hot and the distilled student), and the book says "most of"
  wherever it states F2 as tested.

F1 reads the deviation records that every student stores at its end (`metrics.deviations`: per bin
of the teacher's top-class probability, the teacher's and the student's mean probability on the
teacher's top class, on the test set and on the un-augmented distillation images, the student in
eval mode): chapter 3's students at tau = 1 (m = 1 is self-distillation; the largest m an
ensemble) and chapter 5's s0 students at tau = 4. F2 adds two students per chapter-3 trial beside
its m = 1 student, with the same teacher, images, initial weights and optimizer steps: one on the
true labels alone (alpha = 1) and one that switches from them to distillation after the share
`switch` of its steps.
"""

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from .. import verdict as v
from ..plan import Plan, check_profile, recipe, teachers_of
from . import recycling as rec
from . import self_vs_ensemble as sve

# The recipe at each scale: every run but F2's arms is chapter 3's or chapter 5's, shared by config.
# `switch`: the share of the student steps trained on the one-hot labels before distilling (the
# follow-up switches midway through training).
RECIPE = recipe(paper=dict(switch=0.5), gpu={}, budget={}, smoke={})
FINDINGS = {
    "F1": "A student exaggerates its teacher's confidence (follow-up)",
    "F2": "A late switch to distillation recovers most of its gain (follow-up)",
}
FOLLOW_UP = "Nagarajan et al. 2023"
HEADLINES: dict[str, tuple[str, str]] = {
    "F1": (FOLLOW_UP, "student − teacher confidence < 0 where the teacher is least sure"),
    "F2": (FOLLOW_UP, "a late switch recovers most (over half) of distillation's gain"),
}
SCOPE = (
    "PreResNet-8, CIFAR-10 (JPEG q75), the students of chapters 3 and 5 and chapter 3's "
    "recipe for F2's arms, budget scale"
)

# Rules fixed before the converged students they judge were run (one record, chapter 3's first
# m = 1 student, had been seen). Confidence is the teacher's probability on its top class. The
# teacher is *unsure* at or below LOW (it gives its top class even odds or less) and *confident*
# above HIGH (the top bin of `metrics.DEVIATION_BINS`, whose bins are (k - 1)/10 < p <= k/10). Per
# student, a region's gap is the count-weighted mean over its bins of (student - teacher)
# probability on the teacher's top class.
LOW, HIGH = 0.5, 0.9
# F1 is judged on the distillation images, the images the student is trained to match (F1 as the
# chapter states it is about the student's confidence where the teacher is unsure); the test set is
# shown as context.
CORE_SPLIT = "train"


def plan(
    profile: str = "budget", seeds: tuple[int, ...] | None = None, dataset: str | None = None
) -> Plan:
    """F1's students (chapters 3 and 5, by config), F2's arms beside chapter 3's m = 1 students."""
    check_profile(profile, RECIPE)
    kw = dict(seeds=seeds, dataset=dataset)
    sources = {"self_vs_ensemble": sve.plan(profile, **kw), "recycling": rec.plan(profile, **kw)}
    keep = {
        # the core ensemble sizes: Fig. 10's curve sizes would pool unlike ensembles in a group;
        # the m = 1 students at twice the steps are F1's length control
        "self_vs_ensemble": lambda labels: (
            labels["extra"] == 0
            and not labels["curve"]
            and (labels["length"] == 1 or labels["m"] == 1)
        ),
        "recycling": lambda labels: labels["split"] == rec.HEAT and labels["length"] == 1,
    }
    students = [
        (
            {
                "role": "student",
                "source": source,
                "arm": "distill",
                "m": labels["m"],
                "tau": cfg.temperature,
                "trial": labels["trial"],
                "length": labels["length"],
            },
            cfg,
        )
        for source, p in sources.items()
        for labels, cfg in p.rows
        if labels["role"] == "student" and keep[source](labels)
    ]
    arms = {"onehot": dict(alpha=1.0), "late": dict(switch=RECIPE[profile]["switch"])}
    students += [
        ({**labels, "source": "switch", "arm": arm}, replace(cfg, **change))
        for labels, cfg in list(students)
        if labels["source"] == "self_vs_ensemble" and labels["m"] == 1 and labels["length"] == 1
        for arm, change in arms.items()
    ]
    teachers = teachers_of(students, sources)
    settings = {name: p.settings for name, p in sources.items()}
    return Plan(
        "deviations",
        profile,
        teachers + students,
        {**RECIPE[profile], "dataset": sources["self_vs_ensemble"].settings["dataset"], **settings},
    )


def gap(record: dict, split: str, low: float, high: float) -> float:
    """Count-weighted mean of student - teacher probability on the teacher's top class over the
    bins of `record[split]` (a `metrics.deviations` record) inside [low, high]; NaN when they hold
    no example."""
    d = record[split]
    bins = len(d["count"])
    inside = [
        b
        for b in range(bins)
        if low <= b / bins and (b + 1) / bins <= high + 1e-9 and d["count"][b]
    ]
    if not inside:
        return math.nan
    weights = np.array([d["count"][b] for b in inside], dtype=float)
    diffs = np.array([d["student_top"][b] - d["teacher_top"][b] for b in inside])
    return float(weights @ diffs / weights.sum())


def unsure_bins(split: dict) -> list[int]:
    """The bins of a split's deviation record that lie wholly at or below LOW."""
    edges = len(split["count"])
    return [b for b in range(edges) if (b + 1) / edges <= LOW]


def gaps(students: pd.DataFrame, split: str) -> pd.DataFrame:
    """Per student: the gap where its teacher is unsure (`low`, at most LOW), where it is confident
    (`high`, above HIGH), their difference (`spread`: positive when the student exaggerates), how
    many of the split's images are at most LOW (`unsure`) and how many images the split has
    (`images`: the chapter says what share of them the teacher is unsure of)."""
    rows = []
    for r in students.itertuples():
        low, high = gap(r.deviations, split, 0.0, LOW), gap(r.deviations, split, HIGH, 1.0)
        count = r.deviations[split]["count"]
        unsure = sum(count[b] for b in unsure_bins(r.deviations[split]))
        rows.append(
            {"low": low, "high": high, "spread": high - low, "unsure": unsure, "images": sum(count)}
        )
    return pd.DataFrame(rows, index=students.index)


def disagreements(students: pd.DataFrame, split: str) -> pd.DataFrame:
    """Per student: the share of its top-1 disagreements with its teacher that fall where the
    teacher is unsure (`where_unsure`, at or below LOW) and the share of the split's images there
    (`images_unsure`); NaN for a record without per-bin agreement (stored before it was recorded)
    or a student that never disagrees."""
    rows = []
    for r in students.itertuples():
        d = r.deviations[split]
        edges, count = len(d["count"]), d["count"]
        if "agree" not in d:
            rows.append({"where_unsure": math.nan, "images_unsure": math.nan})
            continue
        missed = [count[b] * (1 - d["agree"][b]) if count[b] else 0 for b in range(edges)]
        unsure = unsure_bins(d)
        rows.append(
            {
                "where_unsure": sum(missed[b] for b in unsure) / sum(missed)
                if sum(missed)
                else math.nan,
                "images_unsure": sum(count[b] for b in unsure) / sum(count),
            }
        )
    return pd.DataFrame(rows, index=students.index)


def _where_disagreements_sit(name: str, g: pd.DataFrame) -> v.Check:
    """Context linking F1 to the paper's thesis (§6: the student fails to match its teacher even
    where it could): whether the test disagreements behind the agreement gap sit where the teacher
    is unsure, the region where the student exaggerates its uncertainty."""
    d = disagreements(g, "test").dropna()
    what = (
        f"{name}, test set: the student's disagreements with its teacher concentrate where the "
        f"teacher is unsure (p ≤ {LOW:g}): their share there exceeds the share of images there"
    )
    source, paper = "our link to the paper's §6", "not measured by either paper"
    if len(d) < 2:
        here = f"{len(d)} of {len(g)} students record per-bin agreement"
        return v.Check(what, source, paper, here, v.INCONCLUSIVE, core=False)
    excess = v.interval(d.where_unsure - d.images_unsure)
    here = excess.here("share of disagreements − share of images ") + (
        f"; {d.where_unsure.mean() * 100:.0f} % of disagreements on "
        f"{d.images_unsure.mean() * 100:.0f} % of images (means)"
    )
    return v.Check(what, source, paper, here, v.rises(excess), core=False)


def bins(students: pd.DataFrame, split: str) -> pd.DataFrame:
    """Long table for the figures: one row per student and non-empty bin, with the bin's centre,
    count, student - teacher probability on the teacher's top class and top-1 agreement (NaN in a
    record stored before per-bin agreement)."""
    rows = []
    for r in students.itertuples():
        d = r.deviations[split]
        edges = len(d["count"])
        rows += [
            {
                "run_id": r.run_id,
                "m": r.m,
                "tau": r.tau,
                "trial": r.trial,
                "confidence": (b + 0.5) / edges,
                "count": d["count"][b],
                "teacher": d["teacher_top"][b],
                "student": d["student_top"][b],
                "gap": d["student_top"][b] - d["teacher_top"][b],
                "agree": d["agree"][b] if "agree" in d else math.nan,
            }
            for b in range(edges)
            if d["count"][b]
        ]
    return pd.DataFrame(rows)


def groups(students: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """F1's groups, the core one first: self-distillation (m = 1, tau = 1), the largest ensemble
    at tau = 1 (chapter 3), and self-distillation at tau = 4 (chapter 5's s0)."""
    ens = students[(students.source == "self_vs_ensemble") & (students.arm == "distill")]
    tau4 = students[(students.source == "recycling") & (students.tau == 4.0) & (students.m == 1)]
    out = {
        "self-distillation, τ = 1": ens[ens.m == 1],
        f"m = {int(ens.m.max())} ensemble, τ = 1": ens[ens.m == ens.m.max()],
        "self-distillation, τ = 4 (chapter 5)": tau4,
    }
    return {name: g for name, g in out.items() if len(g)}


def _length_moves(students: pd.DataFrame) -> dict[str, v.Interval]:
    """What doubling the steps of chapter 3's self-distilled students moved F1's two core measures
    on the distillation images (`low`: the gap where the teacher is unsure; `spread`), paired by
    trial; {} without a length control."""
    own = students[
        (students.source == "self_vs_ensemble") & (students.m == 1) & (students.arm == "distill")
    ]
    if own.length.max() == 1:
        return {}
    by = {n: gaps(g, CORE_SPLIT).set_axis(g.trial) for n, g in own.groupby("length")}
    d = by[own.length.max()] - by[1]
    return {col: v.interval(d[col].dropna()) for col in ("low", "spread") if d[col].count() > 1}


def _exaggeration(
    name: str, g: pd.DataFrame, split: str, core: bool, moved: dict[str, v.Interval] | None = None
) -> list[v.Check]:
    """F1's two checks on one group and split; core ones are guarded by `moved`
    (`_length_moves`)."""
    moved = moved or {}
    all_ = gaps(g, split)
    unsure = all_.dropna(subset=["low"])  # a trial without unsure images has no low gap
    both = all_.dropna(subset=["low", "high"])  # ... and one without confident images no spread
    where = f"{name}, {'distillation images' if split == 'train' else 'test set'}"
    what = (
        f"{where}: where the teacher is unsure (p ≤ {LOW:g}), the student is even less sure",
        f"{where}: the shortfall is larger where the teacher is unsure than where it is "
        f"confident (p > {HIGH:g}): an exaggeration, not a uniform shift",
    )
    paper_spread = "gap(confident) − gap(unsure) > 0"
    checks = []
    if len(unsure) < 2:  # no interval: say why instead of deciding
        checks.append(
            v.Check(
                what[0],
                *HEADLINES["F1"],
                f"{len(unsure)} of {len(all_)} trials have images the teacher is unsure of",
                v.INCONCLUSIVE,
                core=core,
                value=f"{len(unsure)} of {len(all_)} trials with unsure images",
                why="too few trials with unsure images for an interval",
            )
        )
    else:
        low = v.interval(unsure.low)
        checks.append(
            v.guarded(
                v.Check(
                    what[0],
                    *HEADLINES["F1"],
                    low.here("student − teacher ") + f"; {int(unsure.unsure.median())} "
                    "such images per student (median)",
                    v.falls(low),
                    core=core,
                    value=f"where the teacher is unsure, student − teacher {low.short()}",
                ),
                low.mean,
                moved.get("low"),
            )
        )
    if len(both) < 2:
        checks.append(
            v.Check(
                what[1],
                FOLLOW_UP,
                paper_spread,
                f"{len(both)} of {len(all_)} trials have images both where the "
                "teacher is unsure and where it is confident",
                v.INCONCLUSIVE,
                core=core,
            )
        )
    else:
        spread = v.interval(both.spread)
        checks.append(
            v.guarded(
                v.Check(
                    what[1],
                    FOLLOW_UP,
                    paper_spread,
                    spread.here("difference "),
                    v.rises(spread),
                    core=core,
                ),
                spread.mean,
                moved.get("spread"),
            )
        )
    return checks


def _against_one_hot(students: pd.DataFrame) -> list[v.Check]:
    """Context for F1's selection effect: images binned by the teacher's confidence pick out where
    the teacher happens to be low, so any other network scored in those bins may look different
    from it. F2's one-hot student of the same trial (same teacher, images and steps, never shown
    the teacher's outputs) is that baseline: holds when the distilled student falls further short
    where the teacher is unsure, paired by trial."""
    distill = students[(students.arm == "distill") & (students.source == "self_vs_ensemble")]
    onehot = students[students.arm == "onehot"]
    if not len(onehot):
        return []
    low = {
        arm: gaps(g[g.m == 1], CORE_SPLIT).low.set_axis(g[g.m == 1].trial)
        for arm, g in (("distill", distill), ("onehot", onehot))
    }
    d = (low["distill"] - low["onehot"]).dropna()
    what = (
        "self-distillation, distillation images: where the teacher is unsure, the student falls "
        "further short than a one-hot student of the same trial (a baseline for the selection "
        "effect)"
    )
    if len(d) < 2:
        here = f"{len(d)} trials have unsure images for both students"
        return [v.Check(what, FOLLOW_UP, "not measured", here, v.INCONCLUSIVE, core=False)]
    iv = v.interval(d)
    here = iv.here("(student − teacher), distilled − one-hot ")
    return [v.Check(what, FOLLOW_UP, "not measured", here, v.falls(iv), core=False)]


def _late_switch(students: pd.DataFrame) -> list[v.Check]:
    """F2 on test accuracy, paired by trial: distillation's gain over one-hot training (context:
    without it there is nothing to recover) and the late switch against the midpoint of the two."""
    arms = students[
        (students.m == 1)
        & (students.tau == 1.0)
        & students.source.isin(["self_vs_ensemble", "switch"])
    ]
    acc = arms.pivot_table(index="trial", columns="arm", values="accuracy").dropna()
    gain = v.interval(acc.distill - acc.onehot)
    above = v.interval(acc.late - (acc.distill + acc.onehot) / 2)
    gained = v.rises(gain) == v.HOLDS
    # a share of a gain that is not there (or negative) means nothing: shown only beside a gain
    share = (acc.late - acc.onehot).mean() / (acc.distill - acc.onehot).mean() if gained else None
    outcome = v.rises(above) if gained else v.INCONCLUSIVE
    return [
        v.Check(
            "self-distillation gains test accuracy over one-hot training (same steps)",
            FOLLOW_UP,
            "a gain",
            gain.here("distilled − one-hot "),
            v.rises(gain),
            core=False,
        ),
        v.Check(
            "a student switched late from one-hot labels to distillation recovers most of that "
            "gain (above the midpoint of one-hot and distilled)",
            *HEADLINES["F2"],
            above.here("late − midpoint ")
            + (
                f"; share of the gain recovered {share * 100:.0f} % (ratio of means)"
                if gained
                else ""
            ),
            outcome,
            value=f"late − midpoint {above.short()}",
            why="" if gained else "no significant gain to recover",
        ),
    ]


def findings(table: pd.DataFrame, scope: str = SCOPE) -> list[v.Finding]:
    """F1 (the student exaggerates its teacher's confidence) on self-distillation at tau = 1 (the
    follow-up's claims are about self-distilled students), with ensembles, tau = 4 and the test set
    as context; F2 (a late switch to distillation recovers most of its gain: above the midpoint of
    the one-hot and the distilled student) paired by trial."""
    everyone = table[table.role == "student"]
    students = everyone[everyone.length == 1]  # chapter 3's 2x students only guard F1's checks
    unconverged = v.convergence(table)
    moved = _length_moves(everyone)
    f1 = []
    for k, (name, g) in enumerate(groups(students).items()):
        f1 += _exaggeration(name, g, CORE_SPLIT, core=k == 0, moved=moved)
        f1 += _exaggeration(name, g, "test", core=False)
        f1 += [_where_disagreements_sit(name, g)] if k == 0 else []
    f1 += _against_one_hot(students)
    return [
        v.Finding(
            "F1",
            "A student exaggerates its teacher's confidence: even less sure where "
            "the teacher is unsure (Nagarajan et al., 2023)",
            f1,
            scope,
            unconverged,
        ),
        v.Finding(
            "F2",
            "A late switch to distillation recovers most of its gain (Nagarajan et al., 2023)",
            _late_switch(students),
            scope,
            # F2's runs alone: chapter 5's teachers train none of its students
            v.convergence(table[table.source.isin(("self_vs_ensemble", "switch"))]),
        ),
    ]
