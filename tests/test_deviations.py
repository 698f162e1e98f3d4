"""The deviations chapter (Nagarajan et al., 2023): exact gaps, the late switch, and rules that
decide both ways on synthetic tables."""

import math

import pandas as pd
import pytest
import torch

from kdrepro import metrics
from kdrepro import verdict as v
from kdrepro.chapters import deviations as dev
from kdrepro.config import StudentConfig, TeacherConfig
from kdrepro.errors import ConfigError

TINY = dict(
    dataset="mnist",
    model="lenet5",
    train_size=200,
    epochs=3,
    batch_size=50,
    lr=0.05,
    augment="crop",
    crop_pad=2,
    evals=1,
)


def student(**kw) -> StudentConfig:
    return StudentConfig(**{**TINY, "teachers": (TeacherConfig(**TINY),), "temperature": 1.0, **kw})


def record(low_gap: float, high_gap: float, unsure: int = 4, agree: tuple | None = None) -> dict:
    """A deviation record of 10 bins: `unsure` images in bin 3 (0.3 < p <= 0.4), 100 in the top
    bin; the student's probability differs from the teacher's by the given gaps there, and it
    agrees with its teacher on the shares `agree` of those two bins (no per-bin agreement, as in
    records stored before it was recorded, when None)."""
    count = [0, 0, 0, unsure, 0, 0, 0, 0, 0, 100]
    teacher = [None, None, None, 0.35, None, None, None, None, None, 0.97]
    student = [
        None if t is None else t + (low_gap if b == 3 else high_gap) for b, t in enumerate(teacher)
    ]
    split = {
        "count": count,
        "labelled": count,
        "teacher_top": teacher,
        "student_top": student,
        "teacher_true": teacher,
        "student_true": student,
    }
    if agree is not None:
        split["agree"] = [agree[0] if b == 3 else agree[1] if b == 9 else None for b in range(10)]
    return {"train": split, "test": split}


def test_a_gap_is_the_count_weighted_mean_over_the_bins_of_a_region():
    r = {
        "train": {
            "count": [0, 2, 6, 0, 1],
            "teacher_top": [None, 0.3, 0.35, None, 0.9],
            "student_top": [None, 0.1, 0.25, None, 0.95],
        }
    }
    # five bins of width 0.2: [0, 0.6) holds bins 0-2, [0.8, 1] bin 4
    assert dev.gap(r, "train", 0.0, 0.6) == pytest.approx((2 * -0.2 + 6 * -0.1) / 8)
    assert dev.gap(r, "train", 0.8, 1.0) == pytest.approx(0.05)
    assert math.isnan(dev.gap(r, "train", 0.6, 0.8))  # no image there: no gap, not 0


def test_the_regions_edges_are_bin_edges_so_the_prose_can_say_at_or_below_low_and_above_high():
    """The chapter writes the unsure region as p <= LOW and the confident one as p > HIGH. That is
    exact only while both lie on edges of `metrics.deviations`' bins, (k - 1)/10 < p <= k/10: a
    teacher at exactly p = LOW is counted unsure, one at exactly p = HIGH is not confident."""
    bins = metrics.DEVIATION_BINS
    for edge in (dev.LOW, dev.HIGH):
        assert edge * bins == pytest.approx(round(edge * bins))
    # two classes with equal logits: the teacher's top-class probability is exactly 0.5
    teacher = torch.tensor([[0.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    student = torch.tensor([[0.0, 1.0], [0.0, 4.0], [1.0, 0.0]])
    r = metrics.deviations(teacher, student, torch.tensor([0, 1, 0]))
    assert r["count"] == [0, 0, 0, 0, 2, 0, 0, 0, 0, 1]  # p = 0.5 in (0.4, 0.5]; 0.982 at the top
    assert dev.unsure_bins(r) == [0, 1, 2, 3, 4]
    record = {"train": r}
    assert dev.gap(record, "train", 0.0, dev.LOW) == pytest.approx(0.0)  # 0.731 and 0.269 vs 0.5
    assert dev.gap(record, "train", dev.HIGH, 1.0) == pytest.approx(0.0)  # the same network
    row = dev.gaps(pd.DataFrame([{"deviations": record}]), "train").iloc[0]
    assert (row.unsure, row.images) == (2, 3)
    # a teacher at 0.8 < p <= 0.9 (p = HIGH itself among them) is not confident: no gap there
    r["count"] = [0] * 8 + [3, 0]
    assert math.isnan(dev.gap(record, "train", dev.HIGH, 1.0))


def table(
    low: list[float], high: list[float], acc: dict[str, list[float]], agree: list | None = None
) -> pd.DataFrame:
    """Teachers that fit, chapter 3's m = 1 students with the given gaps, accuracies and per-bin
    agreements, and F2's two arms, one trial per list entry."""
    rows = [
        {
            "role": "teacher",
            "source": "self_vs_ensemble",
            "clean_train_accuracy": 1.0,
            "run_id": f"t{i}",
        }
        for i in range(len(low))
    ]
    for i, (lo, hi) in enumerate(zip(low, high)):
        for arm, source in (
            ("distill", "self_vs_ensemble"),
            ("onehot", "switch"),
            ("late", "switch"),
        ):
            rows.append(
                {
                    "role": "student",
                    "source": source,
                    "arm": arm,
                    "m": 1,
                    "tau": 1.0,
                    "trial": i,
                    "run_id": f"{arm}{i}",
                    "length": 1,
                    "accuracy": acc[arm][i],
                    "deviations": record(lo, hi, agree=agree[i] if agree else None),
                }
            )
    return pd.DataFrame(rows)


GAIN = {"onehot": [0.50, 0.51, 0.50, 0.49, 0.50], "distill": [0.54, 0.55, 0.55, 0.53, 0.54]}


def test_f1_holds_when_the_student_falls_short_where_the_teacher_is_unsure_and_fails_otherwise():
    late = [0.53, 0.54, 0.54, 0.52, 0.53]
    f1, _ = dev.findings(
        table(
            [-0.10, -0.12, -0.08, -0.11, -0.09],
            [0.0, 0.01, -0.01, 0.0, 0.0],
            {**GAIN, "late": late},
        )
    )
    assert f1.status == "reproduced"
    # a uniform shift (the same shortfall everywhere) is not an exaggeration
    f1, _ = dev.findings(
        table(
            [-0.10, -0.12, -0.08, -0.11, -0.09],
            [-0.10, -0.12, -0.08, -0.11, -0.09],
            {**GAIN, "late": late},
        )
    )
    assert [c.outcome for c in f1.checks if c.core] == [v.HOLDS, v.INCONCLUSIVE]
    f1, _ = dev.findings(
        table([0.10, 0.12, 0.08, 0.11, 0.09], [0.0, 0.0, 0.0, 0.0, 0.0], {**GAIN, "late": late})
    )
    assert f1.status == "not reproduced"


def test_disagreements_are_located_by_teacher_confidence_exactly():
    students = pd.DataFrame(
        [
            {"deviations": record(0, 0, agree=(0.5, 0.98))},  # 2 + 2 disagreements
            {"deviations": record(0, 0, agree=(1.0, 1.0))},  # none: no share
            {"deviations": record(0, 0)},  # stored before per-bin agreement
        ]
    )
    d = dev.disagreements(students, "test")
    assert d.where_unsure[0] == pytest.approx(0.5) and d.images_unsure[0] == pytest.approx(4 / 104)
    assert d.isna().iloc[1:].where_unsure.all() and math.isnan(d.images_unsure[2])


def test_where_disagreements_sit_is_context_that_decides_both_ways():
    late = [0.53, 0.54, 0.54, 0.52, 0.53]
    gaps_ = ([-0.10, -0.12, -0.08, -0.11, -0.09], [0.0, 0.01, -0.01, 0.0, 0.0])

    def context(agree):
        f1, _ = dev.findings(table(*gaps_, {**GAIN, "late": late}, agree))
        (c,) = [c for c in f1.checks if "concentrate" in c.what]
        assert not c.core
        return c

    unsure = [(0.5, 0.98), (0.25, 0.97), (0.5, 0.99), (0.75, 0.98), (0.5, 0.96)]
    assert context(unsure).outcome == v.HOLDS
    assert context([(1.0, 0.9 - t / 100) for t in range(5)]).outcome == v.FAILS
    old = context(None)
    assert old.outcome == v.INCONCLUSIVE and old.here.startswith("0 of 5 students")


def test_f2_is_scored_against_the_midpoint_and_needs_a_gain_to_recover():
    gaps = ([-0.1] * 5, [0.0] * 5)
    holds = dev.findings(table(*gaps, {**GAIN, "late": [0.53, 0.54, 0.54, 0.52, 0.53]}))[1]
    fails = dev.findings(table(*gaps, {**GAIN, "late": [0.505, 0.515, 0.51, 0.495, 0.50]}))[1]
    assert (holds.status, fails.status) == ("reproduced", "not reproduced")
    # (0.532 - 0.500) / (0.542 - 0.500): the mean late arm recovers 76 % of the mean gain
    assert "share of the gain recovered 76 %" in holds.checks[1].here
    no_gain = {"onehot": GAIN["distill"], "distill": GAIN["onehot"], "late": GAIN["onehot"]}
    assert dev.findings(table(*gaps, no_gain))[1].status == "inconclusive"


def test_f1s_one_hot_baseline_is_context_that_decides_both_ways():
    """The distilled student's shortfall where the teacher is unsure, against the one-hot student
    of the same trial (F1's selection effect): further short holds, less short fails; either way
    the verdict stays with the core checks."""
    low, high = [-0.10, -0.12, -0.08, -0.11, -0.09], [0.0, 0.01, -0.01, 0.0, 0.0]
    late = [0.53, 0.54, 0.54, 0.52, 0.53]
    for onehot_low, outcome in ((-0.02, v.HOLDS), (-0.2, v.FAILS)):
        t = table(low, high, {**GAIN, "late": late})
        arm = t.arm == "onehot"
        t.loc[arm, "deviations"] = [record(onehot_low + 0.001 * i, 0.0) for i in range(arm.sum())]
        f1, _ = dev.findings(t)
        (c,) = [c for c in f1.checks if "one-hot student" in c.what]
        assert c.outcome == outcome and not c.core and f1.status == "reproduced"
        if outcome == v.HOLDS:  # −0.100 against −0.018 on average: 8.2 pt further short
            assert c.here.startswith("(student − teacher), distilled − one-hot −8.2 pt")


def test_f1_is_guarded_by_chapter_3s_length_control():
    """Doubling the self-distilled students' steps moves the gap where the teacher is unsure by 1 pt
    (kept: the 10-pt shortfall is larger) or by 12 pt (withdrawn), paired by trial."""
    low, high = [-0.10, -0.12, -0.08, -0.11, -0.09], [0.0, 0.01, -0.01, 0.0, 0.0]
    late = [0.53, 0.54, 0.54, 0.52, 0.53]
    for shift, outcome in ((-0.01, v.HOLDS), (0.12, v.INCONCLUSIVE)):
        t = table(low, high, {**GAIN, "late": late})
        longer = t[t.arm == "distill"].assign(
            length=2,
            deviations=[record(x + shift + 0.001 * i, 0.0) for i, x in enumerate(low)],
        )
        f1, f2 = dev.findings(pd.concat([t, longer], ignore_index=True))
        first = f1.checks[0]
        assert first.outcome == outcome and "doubling the student steps moved it" in first.note
        assert f2.status == "reproduced"  # the 2x students join no F2 arm
    assert first.why == "the length control withdrew it" and f1.status != "reproduced"


def test_f2_is_gated_by_its_own_teachers_only():
    """A chapter-5 teacher that does not fit withholds F1 (which reads chapter 5's students) but
    not F2, whose students all distill chapter 3's teachers."""
    gaps = ([-0.1] * 5, [0.0] * 5)
    t = table(*gaps, {**GAIN, "late": [0.53, 0.54, 0.54, 0.52, 0.53]})
    loose = {"role": "teacher", "source": "recycling", "clean_train_accuracy": 0.9, "run_id": "r"}
    f1, f2 = dev.findings(pd.concat([t, pd.DataFrame([loose])], ignore_index=True))
    assert f1.status == "inconclusive" and "1 of 6 teachers do not fit" in f1.unconverged
    assert f2.status == "reproduced" and f2.unconverged == ""


def test_a_late_switch_trains_on_the_true_labels_first_and_is_hashed_only_when_set():
    s = student(switch=0.5)  # 12 steps: 6 on the labels alone
    assert [s.alpha_at(k) for k in range(s.steps)] == [1.0] * 6 + [0.0] * 6
    assert [student().alpha_at(k) for k in (0, 11)] == [0.0, 0.0]
    assert "switch" not in student().to_dict() and s.run_id != student().run_id
    with pytest.raises(ConfigError, match=r"switch=1.0: must be in \[0, 1\)"):
        student(switch=1.0)
    with pytest.raises(ConfigError, match="switch=0.5: must be 0 with ood_dataset"):
        student(switch=0.5, ood_dataset="cifar10_jpeg", ood_size=5)


def test_the_plan_adds_two_arms_beside_each_self_distilled_student_with_its_steps_and_init():
    p = dev.plan("budget")
    arms = {}
    for labels, cfg in p.rows:
        if (
            labels["role"] == "student"
            and labels["source"] in ("self_vs_ensemble", "switch")
            and labels["m"] == 1
            and labels["length"] == 1
        ):
            arms.setdefault(labels["trial"], {})[labels["arm"]] = cfg
    assert len(arms) == 5
    # chapter 3's m = 1 students at twice the steps come along as F1's length control, with no arms
    longer = [c for labels, c in p.rows if labels["role"] == "student" and labels["length"] == 2]
    assert len(longer) == 5 and {c.steps for c in longer} == {9375}  # 1.2M images of 128
    for trial in arms.values():
        distill, onehot, late = trial["distill"], trial["onehot"], trial["late"]
        assert (onehot.alpha, late.switch, late.alpha) == (1.0, 0.5, 0.0)
        assert distill.steps == onehot.steps == late.steps
        assert round(late.steps / late.teachers[0].steps, 2) == 3.0  # the paper's ratio
        assert distill.init_seed == onehot.init_seed == late.init_seed
        assert distill.teachers == onehot.teachers == late.teachers


def test_the_loop_trains_on_the_true_labels_until_the_switch(tmp_store, monkeypatch):
    from kdrepro import runs, train

    alphas, real = [], train.kd_loss

    def spy(out, target, tau, alpha=0.0, targets=None):
        alphas.append((alpha, targets is not None))
        return real(out, target, tau, alpha, targets)

    monkeypatch.setattr(train, "kd_loss", spy)
    runs.run(student(switch=0.5), progress=False)
    assert alphas == [(1.0, True)] * 6 + [(0.0, False)] * 6  # 12 steps, the labels alone for 6


def test_f1_without_unsure_images_in_two_trials_is_inconclusive_not_an_error():
    t = table([-0.1] * 5, [0.0] * 5, {**GAIN, "late": GAIN["distill"]})
    for i in t[t.role == "student"].index[3:]:  # every trial but the first has none
        t.at[i, "deviations"] = record(-0.1, 0.0, unsure=0)
    f1 = dev.findings(t)[0]
    assert f1.status == "inconclusive" and "1 of 5 trials" in f1.checks[0].here


def test_f1_without_confident_images_still_decides_the_shortfall_where_the_teacher_is_unsure():
    """Weak teachers (smoke scale) have no confident images: the unsure region alone decides the
    first check; the spread needs both regions and is inconclusive with the count."""
    t = table([-0.1, -0.12, -0.08, -0.11, -0.09], [0.0] * 5, {**GAIN, "late": GAIN["distill"]})
    for i in t[t.role == "student"].index:
        r = t.at[i, "deviations"]
        for split in r.values():
            split["count"] = split["count"][:9] + [0]
    f1 = dev.findings(t)[0]
    first, spread = [c for c in f1.checks if c.core]
    assert first.outcome == v.HOLDS
    assert spread.outcome == v.INCONCLUSIVE and "0 of 5 trials have images both" in spread.here
