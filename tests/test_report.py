"""Verdicts are computed, not typed: the chapters' checks and the summary helpers on hand-made
tables."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from kdrepro import chapters, figures, plan, report
from kdrepro import verdict as v
from kdrepro.chapters import lenet_mnist, self_vs_ensemble


def test_a_span_prints_one_number_when_its_ends_print_alike():
    assert figures.span([0.990, 0.998, 0.9951]) == "99.0–99.8"
    assert figures.span([1.0, 0.99996]) == "100.0"


def test_powers_of_ten_print_as_the_paper_writes_them_and_other_numbers_as_they_are():
    assert [figures.power_of_ten(x) for x in (1e-06, 1e-4, 0.001, 1.0, 100.0)] == [
        "10⁻⁶",
        "10⁻⁴",
        "10⁻³",
        "10⁰",
        "10²",
    ]
    assert [figures.power_of_ten(x) for x in (0.05, 2e-6, 0.0, -1e-3)] == [
        "0.05",
        "2e-06",
        "0",
        "-0.001",
    ]


def test_a_table_renders_as_markdown_with_bars_escaped_and_gaps_marked():
    table = pd.DataFrame({"run": ["a", "1 − |x|"], "n": [3, 2], "paper": ["79.0", np.nan]})
    assert report.markdown(table) == (
        "| run | n | paper |\n|---|---|---|\n| a | 3 | 79.0 |\n| 1 − \\|x\\| | 2 | — |\n"
    )


def test_mean_std_uses_sample_std_and_zero_for_one_trial():
    table = pd.DataFrame({"g": [1, 1, 1, 2], "v": [0.1, 0.2, 0.3, 0.5]})
    out = figures.mean_std(table, ["g"], ["v"])
    assert out.v_mean.tolist() == pytest.approx([0.2, 0.5])
    assert out.v_std.tolist() == pytest.approx(
        [0.1, 0.0]
    )  # sqrt(((0.1)^2 + 0 + (0.1)^2) / 2) = 0.1
    assert out.n.tolist() == [3, 1]
    assert figures.std([0.5]) == 0.0 and math.isclose(figures.std([1.0, 3.0]), math.sqrt(2))
    assert figures.pm(0.87345, 0.0042) == "87.3 ± 0.4"
    assert [figures.name(k) for k in ("cifar10_jpeg", "preresnet8", "preresnet56_basic", "x")] == [
        "CIFAR-10 (JPEG q75)",
        "PreResNet-8",
        "PreResNet-56 (basic blocks)",
        "x",
    ]
    # CIFAR-10's label order; where no names are known, or the label is out of range, the label
    assert [figures.class_name("cifar10_jpeg", k) for k in (0, 3, 9, 10)] == [
        "airplane",
        "cat",
        "truck",
        "10",
    ]
    assert figures.class_name("mnist", 7) == "7"


def lenet_table(
    agreement_small, agreement_large, student_acc, teacher_acc, large=60_000, long=None
):
    """Chapter 2's table; `long`: (agreement shift, accuracy shift) of the largest set at 2x the
    steps."""
    rows = [
        {
            "role": "teacher",
            "trial": t,
            "accuracy": a,
            "train_accuracy": 1.0,
            "late_change": 0.0,
            "steps": 312,
        }
        for t, a in enumerate(teacher_acc)
    ]
    arms = [(200, agreement_small, 1, (0, 0)), (large, agreement_large, 1, (0, 0))]
    arms += [(large, agreement_large, 2, long)] if long else []
    for size, agr, length, (d_agr, d_acc) in arms:
        rows += [
            {
                "role": "student",
                "trial": t,
                "distill_size": size,
                "agreement": a + d_agr + t / 1e4,
                "accuracy": s + d_acc + t / 1e4,
                "control_agreement": a - 0.1 - t / 100,
                "late_change": 0.001,
                "length": length,
                "steps": 4687 * length,
            }
            for t, (a, s) in enumerate(zip(agr, student_acc))
        ]
    return pd.DataFrame(rows)


def noise(seed: int = 0, sd: float = 0.0005):
    """Independent per-row jitter, so that paired differences vary across trials (a constant
    difference would give a zero-width interval and never test one)."""
    rng = np.random.default_rng(seed)
    return lambda: float(rng.normal(0, sd))


def outcomes(finding):
    return [c.outcome for c in finding.checks]


def test_h1_rules():
    teachers = [0.88, 0.90, 0.89, 0.91, 0.87]
    students = [t + d for t, d in zip(teachers, (0.002, -0.003, 0.001, 0.0, 0.002))]
    (h1,) = lenet_mnist.findings(
        lenet_table(
            [0.93, 0.92, 0.94, 0.93, 0.95], [0.993, 0.992, 0.994, 0.991, 0.995], students, teachers
        )
    )
    # the paper's "> 99 %" needs EMNIST-sized sets: at 60k MNIST it is not testable, whatever the
    # number
    assert (
        outcomes(h1) == ["holds", "inconclusive", "holds", "holds"]
        and h1.status == "partly reproduced"
    )
    assert not h1.checks[3].core and h1.checks[1].why.startswith(
        "untestable without EMNIST-sized sets"
    )
    # at an EMNIST-sized set it is compared as stated, with no tolerance: 98.5 % fails, 99.3 % holds
    (h1,) = lenet_mnist.findings(
        lenet_table(
            [0.93] * 5, [0.985, 0.984, 0.986, 0.985, 0.983], students, teachers, large=175_000
        )
    )
    assert outcomes(h1)[1] == "fails" and h1.status == "not reproduced"
    (h1,) = lenet_mnist.findings(
        lenet_table(
            [0.93, 0.92, 0.94, 0.93, 0.95],
            [0.993, 0.992, 0.994, 0.991, 0.995],
            students,
            teachers,
            large=175_000,
        )
    )
    assert outcomes(h1) == ["holds"] * 4 and h1.status == "reproduced"
    # no rise: per-trial changes of both signs
    (h1,) = lenet_mnist.findings(
        lenet_table(
            [0.98, 0.99, 0.985, 0.975, 0.99], [0.99, 0.98, 0.99, 0.985, 0.98], students, teachers
        )
    )
    assert outcomes(h1)[0] == "inconclusive" and h1.status == "partly reproduced"
    assert "students take 15× the teachers' steps" in h1.checks[2].here


def test_h1_core_checks_are_withdrawn_when_doubling_the_steps_moves_more_than_their_effect():
    teachers = [0.88, 0.90, 0.89, 0.91, 0.87]
    students = [t + d for t, d in zip(teachers, (0.002, -0.003, 0.001, 0.0, 0.002))]
    args = ([0.93, 0.92, 0.94, 0.93, 0.95], [0.993, 0.992, 0.994, 0.991, 0.995], students, teachers)
    # doubling moves agreement 1 pt, less than the 6-pt rise, and accuracy 0.1 pt: both stay decided
    (h1,) = lenet_mnist.findings(lenet_table(*args, long=(0.01, 0.001)))
    assert outcomes(h1) == ["holds", "inconclusive", "holds", "holds"]
    assert "less than its distance from the threshold" in h1.checks[0].note
    # doubling moves accuracy 2 pt, more than the 1.4-pt room inside the ±1.5 pt margin: accuracy
    # undecided
    (h1,) = lenet_mnist.findings(lenet_table(*args, long=(0.01, 0.02)))
    assert (
        outcomes(h1)[2] == "inconclusive"
        and "at least its distance from the threshold" in h1.checks[2].note
    )
    # doubling moves agreement by more than the rise: the rise is withdrawn
    (h1,) = lenet_mnist.findings(lenet_table(*args, long=(0.08, 0.0)))
    assert outcomes(h1)[0] == "inconclusive"


def test_unconverged_runs_make_a_finding_inconclusive_whatever_its_checks():
    teachers = [0.88, 0.90, 0.89, 0.91, 0.87]
    good = lenet_table(
        [0.93, 0.92, 0.94, 0.93, 0.95],
        [0.993, 0.992, 0.994, 0.991, 0.995],
        teachers,
        teachers,
        large=175_000,
    )
    assert lenet_mnist.findings(good)[0].status == "reproduced"
    slow = good.copy()
    slow.loc[slow.role == "teacher", ["train_accuracy", "late_change"]] = [0.79, 0.08]
    (h1,) = lenet_mnist.findings(slow)
    assert outcomes(h1) == ["holds"] * 4 and h1.status == "inconclusive"
    assert h1.reason == (
        "runs not converged at this scale (5 of 5 teachers neither fit their training set (train "
        "accuracy 79–79 %) nor plateaued (up to 8.0 pt over the last quarter))"
    )
    fit = slow.copy()
    fit.loc[fit.role == "teacher", "train_accuracy"] = 0.99  # fits its data: still moving is fine
    assert lenet_mnist.findings(fit)[0].status == "reproduced"
    moving = good.copy()
    moving.loc[moving.distill_size == 175_000, "late_change"] = -0.006
    assert (
        "5 of 10 students' train agreement moved by up to 0.6 pt"
        in lenet_mnist.findings(moving)[0].reason
    )


def ensemble_table(cells, trials, long=None, curve=()):
    """cells: (m, extra) -> (agreement, accuracy, teacher accuracy, control agreement), the same in
    each trial up to a small per-trial wobble; `long`: the same for the length control (m = 1, no
    extra data, 2x steps); `curve`: the ms that only fill Fig. 10's curve."""
    rows = [
        {
            "role": "teacher",
            "member": k,
            "accuracy": 0.65,
            "train_accuracy": 0.99,
            "clean_train_accuracy": 0.995,
            "late_change": 0.0,
            "steps": 300,
        }
        for k in range(3)
    ]
    e = noise()
    arms = [(key, values, 1) for key, values in cells.items()]
    arms += [((1, 0), long, 2)] if long else []
    for (m, extra), (agr, acc, tacc, ctrl), length in arms:
        for t in range(trials[m]):
            w = (t - 2) * 0.002
            rows.append(
                {
                    "role": "student",
                    "trial": t,
                    "m": m,
                    "extra": extra,
                    "length": length,
                    "curve": int(m in curve),
                    "agreement": agr + w + e(),
                    "accuracy": acc + w + e(),
                    "teacher_accuracy": tacc + w / 2,
                    "control_agreement": ctrl + w + e(),
                    "late_change": 0.0,
                    "steps": 900 * length,
                }
            )
    return pd.DataFrame(rows)


def test_ensemble_rules():
    cells = {
        (1, 0): (0.80, 0.66, 0.65, 0.75),
        (1, 4000): (0.83, 0.64, 0.65, 0.76),
        (3, 0): (0.85, 0.68, 0.72, 0.80),
        (3, 4000): (0.87, 0.69, 0.72, 0.81),
        (5, 0): (0.87, 0.69, 0.73, 0.81),
    }
    h2, h3, h10 = self_vs_ensemble.findings(ensemble_table(cells, {1: 5, 3: 5, 5: 3}))
    assert h2.status == "reproduced" and h3.status == "reproduced" and h10.status == "reproduced"
    assert [c.core for c in h3.checks] == [
        True,
        True,
        True,
        False,
        False,
    ]  # control margin, teacher lead: context
    assert h2.checks[1].here.endswith(
        "half-width 0.2 pt (5 trials); students train 3.00× the teachers' steps"
    )
    margin = [c for c in h10.checks if "independent control" in c.what]
    assert [c.core for c in margin] == [False, False] and margin[
        1
    ].outcome == "holds"  # +1 pt from m = 3 to 5
    # students far less accurate than their single teacher: H2's accuracy check fails
    cells[(1, 0)] = (0.80, 0.60, 0.65, 0.75)
    h2, _, _ = self_vs_ensemble.findings(ensemble_table(cells, {1: 5, 3: 5, 5: 3}))
    assert outcomes(h2)[1] == "fails" and h2.status == "not reproduced"
    # agreement flat in m (equal means, wobble only): inconclusive, while the context checks still
    # hold
    cells[(3, 0)] = (0.80, 0.68, 0.72, 0.75)
    cells[(5, 0)] = (0.80, 0.69, 0.73, 0.75)
    *_, h10 = self_vs_ensemble.findings(ensemble_table(cells, {1: 5, 3: 5, 5: 3}))
    assert [c.outcome for c in h10.checks if c.core] == ["inconclusive", "inconclusive"]
    assert h10.status == "inconclusive"


def test_fig_10s_curve_sizes_are_context_and_leave_h10s_core_checks_as_fixed():
    cells = {
        (1, 0): (0.80, 0.66, 0.65, 0.75),
        (2, 0): (0.79, 0.67, 0.70, 0.76),  # a dip at m = 2: its step fails, as context only
        (3, 0): (0.85, 0.68, 0.72, 0.80),
        (4, 0): (0.86, 0.68, 0.73, 0.80),
        (5, 0): (0.87, 0.69, 0.73, 0.81),
    }
    trials = {1: 5, 2: 5, 3: 5, 4: 3, 5: 3}
    *_, h10 = self_vs_ensemble.findings(ensemble_table(cells, trials, curve=(2, 4)))
    assert [c.what for c in h10.checks if c.core] == [
        "agreement rises from m = 1 to m = 3",
        "agreement rises from m = 3 to m = 5",
    ]
    curve = [c for c in h10.checks if c.what.startswith("Fig. 10's curve")]
    assert [(c.what[-14:], c.outcome, c.core) for c in curve] == [
        ("m = 1 to m = 2", "fails", False),
        ("m = 2 to m = 3", "holds", False),
        ("m = 3 to m = 4", "holds", False),
        ("m = 4 to m = 5", "holds", False),
    ]
    assert h10.status == "reproduced"


def test_the_length_control_withdraws_only_effects_that_doubling_matches():
    cells = {
        (1, 0): (0.80, 0.66, 0.65, 0.75),
        (1, 4000): (0.83, 0.64, 0.65, 0.76),
        (3, 0): (0.85, 0.68, 0.72, 0.80),
        (5, 0): (0.87, 0.69, 0.73, 0.81),
    }
    trials = {1: 5, 3: 5, 5: 3}
    # doubling moves agreement by +0.5 pt: the +3 pt extra-data rise and the +5 pt m = 1 -> 3 rise
    # stay decided
    h2, _, h10 = self_vs_ensemble.findings(
        ensemble_table(cells, trials, long=(0.805, 0.66, 0.65, 0.75))
    )
    extra = next(c for c in h2.checks if c.what.startswith("extra distillation data"))
    assert extra.outcome == "holds" and extra.note.startswith(
        "doubling the steps of m = 1 students without extra data moved it +0.5 pt"
    )
    assert (
        "less than its distance from the threshold (" in extra.note
        and h10.checks[0].outcome == "holds"
    )
    # doubling moves agreement by +4 pt: the +3 pt rise is withdrawn, the +5 pt one (m = 1 -> 3) is
    # not
    h2, _, h10 = self_vs_ensemble.findings(
        ensemble_table(cells, trials, long=(0.84, 0.66, 0.65, 0.75))
    )
    extra = next(c for c in h2.checks if c.what.startswith("extra distillation data"))
    assert extra.outcome == "inconclusive" and "so the check held only at this length" in extra.note
    assert (
        h10.checks[0].outcome == "holds" and h10.checks[1].outcome == "inconclusive"
    )  # m = 3 -> 5: +2 pt
    assert h2.status == "partly reproduced"
    # a failing check is withdrawn the same way: doubling makes the student 6 pt more accurate than
    # at 1x
    cells[(1, 0)] = (0.80, 0.60, 0.65, 0.75)
    h2, _, _ = self_vs_ensemble.findings(
        ensemble_table(cells, trials, long=(0.80, 0.66, 0.65, 0.75))
    )
    assert h2.checks[1].outcome == "inconclusive" and h2.status != "not reproduced"


def test_teachers_that_do_not_fit_make_the_chapter_inconclusive():
    cells = {(1, 0): (0.80, 0.66, 0.65, 0.75), (3, 0): (0.85, 0.68, 0.72, 0.80)}
    table = ensemble_table(cells, {1: 5, 3: 5})
    assert all(f.status == "reproduced" for f in self_vs_ensemble.findings(table))
    table.loc[0, "clean_train_accuracy"] = 0.985
    h2, h3, h10 = self_vs_ensemble.findings(table)
    assert {h2.status, h3.status, h10.status} == {"inconclusive"}
    assert h2.unconverged == (
        "1 of 3 teachers do not fit their training set (eval-mode train accuracy "
        "98.5–98.5 %, below 99 %)"
    )


def test_a_teacher_at_chance_or_constant_is_refused(tmp_store):
    p = lenet_mnist.plan("smoke", seeds=(0,))
    fake = {
        "steps": 10,
        "curves": [{"step": 10, "train_accuracy": 0.5}],
        "train_examples": 200,
        "provenance": {
            "wall_seconds": 1.0,
            "device_name": "cpu",
            "git_commit": "x",
            "git_dirty": False,
        },
    }
    good = {"accuracy": 0.85, "top_class_share": 0.12, "agreement": 0.9}
    results = [{**fake, "final": good} for _ in p.configs]
    assert len(p.table(results)) == len(p.configs)
    results[-1] = {
        **fake,
        "final": {**good, "agreement": 0.15},
    }  # e.g. a sign error in the distillation loss
    with pytest.raises(
        plan.LearnedNothing, match="agrees with its teacher on 15.0 % of test images"
    ):
        p.table(results)
    results[-1] = {**fake, "final": good}
    for final, reason in (
        ({"accuracy": 0.15, "top_class_share": 0.12}, "ended at 15.0 % test accuracy"),
        ({"accuracy": 0.35, "top_class_share": 0.9}, "with 90 % of its predictions in one class"),
    ):
        results[0] = {**fake, "final": final}
        with pytest.raises(plan.LearnedNothing, match=reason):
            p.table(results)


def policy_table(cells, trials=5, m=3, long=None):
    """cells: policy -> (agreement, accuracy, ece, control agreement) of the policies run, the same
    in every trial up to a small per-trial wobble; `long`: Baseline at 2x the steps, (agreement,
    accuracy, ece). Teachers fit their images."""
    rows = [
        {
            "role": "teacher",
            "member": k,
            "arch": "preresnet8",
            "accuracy": 0.6,
            "train_accuracy": 0.99,
            "clean_train_accuracy": 0.995,
            "late_change": 0.0,
        }
        for k in range(3)
    ]
    e = noise()
    arms = [(policy, values, 1) for policy, values in cells.items()]
    arms += [("baseline", (*long, cells["baseline"][3]), 2)] if long else []
    for policy, (agr, acc, ece, ctrl), length in arms:
        for t in range(trials):
            w = (t - 1) * 0.002
            rows.append(
                {
                    "role": "student",
                    "arch": "preresnet8",
                    "trial": t,
                    "m": m,
                    "policy": policy,
                    "length": length,
                    "agreement": agr + w + e(),
                    "accuracy": acc + w + e(),
                    "ece": ece + w / 10 + e() / 10,
                    "control_agreement": ctrl + w + e(),
                    "late_change": 0.0,
                }
            )
    return pd.DataFrame(rows)


# (agreement, accuracy, ece, control agreement): Fig. 3's pattern, MixUp (tau=4) on top and best
# calibrated
PAPER_LIKE = {
    "baseline": (0.79, 0.725, 0.05, 0.77),
    "baseline_t4": (0.845, 0.745, 0.04, 0.81),
    "mixup": (0.835, 0.75, 0.03, 0.81),
    "mixup_t4": (0.86, 0.745, 0.02, 0.83),
}


def test_h4_and_h15_rules():
    from kdrepro.chapters import augmentation

    bad = {"noise": (0.785, 0.715, 0.06, 0.77), "ood": (0.78, 0.72, 0.06, 0.77)}
    h4, h15 = augmentation.findings(policy_table({**PAPER_LIKE, **bad}))
    assert outcomes(h4) == ["holds"] * 10 and h4.status == "reproduced"
    # context: the accuracy half (Fig. 3's gap is inside its read-out error), and the control's
    # threshold, which is ours
    assert [c.core for c in h4.checks] == [True] * 8 + [False, False]
    assert h4.checks[0].here.startswith("the closest rival, Baseline (τ=4) − MixUp (τ=4): −1.5 pt")
    assert all("half-width" in c.here for f in (h4, h15) for c in f.checks if c.core)
    assert outcomes(h15) == ["holds"] and h15.status == "reproduced"
    # the budget recipe's four policies: no noise or OOD checks
    h4, _ = augmentation.findings(policy_table(PAPER_LIKE))
    assert outcomes(h4) == ["holds"] * 6 and h4.status == "reproduced"
    # MixUp (tau=4) clearly below another policy; tempering does nothing; MixUp gains nothing from
    # tempering
    flat = {
        **PAPER_LIKE,
        "baseline_t4": (0.79, 0.725, 0.05, 0.77),
        "mixup_t4": (0.80, 0.72, 0.05, 0.78),
        "combined": (0.90, 0.80, 0.01, 0.85),
    }
    h4, h15 = augmentation.findings(policy_table(flat))
    assert outcomes(h4)[:3] == ["fails", "inconclusive", "fails"] and h4.status == "not reproduced"
    assert outcomes(h4)[3] == "fails"  # MixUp (tau=4) agrees less than MixUp (tau=1)
    assert outcomes(h15) == ["holds"]  # Combined: most faithful by far and best calibrated
    # at m = 1 alone (smoke) H15 cannot be judged
    h15 = augmentation.findings(policy_table(PAPER_LIKE, m=1))[1]
    assert outcomes(h15) == ["inconclusive"] and "not testable here" in h15.checks[0].here


def test_h4_margins_are_smaller_than_figure_3s_gaps():
    """'Near the top' allows 0.75 pt and 'not more accurate' 0.25 pt, half of the paper's gaps: a
    rival 1 pt ahead of MixUp (tau=4), or MixUp (tau=4) 0.5 pt more accurate than at tau=1,
    fails. The accuracy half is context (Fig. 3's gap is inside its read-out error): its failure
    leaves the verdict as it was."""
    from kdrepro.chapters import augmentation

    def h4(**cells):
        return augmentation.findings(policy_table({**PAPER_LIKE, **cells}))[0]

    ahead = h4(baseline_t4=(0.87, 0.745, 0.04, 0.81))
    assert outcomes(ahead)[0] == "fails"
    assert ahead.checks[0].what.endswith("(within 0.75 pt of every other policy)")
    near = h4(baseline_t4=(0.865, 0.745, 0.04, 0.81))  # 0.5 pt ahead: near the top
    assert outcomes(near)[0] == "holds"
    more_accurate = h4(mixup_t4=(0.86, 0.755, 0.02, 0.83))
    assert outcomes(more_accurate)[-2] == "fails" and not more_accurate.checks[-2].core
    assert more_accurate.status == h4().status == "reproduced"


def test_h15_can_fail_without_a_clear_leader():
    """The candidates for the most faithful are the policies no other is significantly ahead of; H15
    fails when each has a significantly better-calibrated rival, whether or not one leads."""
    from kdrepro.chapters import augmentation

    # one policy clearly ahead in agreement, and clearly worse calibrated than another
    miscalibrated = {**PAPER_LIKE, "mixup_t4": (0.86, 0.745, 0.09, 0.83)}
    h15 = augmentation.findings(policy_table(miscalibrated))[1]
    assert outcomes(h15) == ["fails"] and h15.status == "not reproduced"
    assert h15.checks[0].here.startswith(
        "MixUp (τ=4) is the most faithful (MixUp (τ=4) − Baseline (τ=4): +1.5 pt"
    )
    # the three most faithful cannot be told apart, and have the three worst ECEs
    tied = {
        "baseline": (0.79, 0.725, 0.02, 0.77),
        "baseline_t4": (0.85, 0.745, 0.05, 0.81),
        "mixup": (0.85, 0.75, 0.06, 0.81),
        "mixup_t4": (0.85, 0.745, 0.07, 0.83),
    }
    h15 = augmentation.findings(policy_table(tied))[1]
    assert outcomes(h15) == ["fails"]
    assert "cannot be told apart in agreement" in h15.checks[0].here
    # tied leaders, one of them best calibrated: undecided
    tied["mixup_t4"] = (0.85, 0.745, 0.01, 0.83)
    assert outcomes(augmentation.findings(policy_table(tied))[1]) == ["inconclusive"]


def test_the_length_control_guards_h4_and_h15():
    """Doubling Baseline's steps moves its agreement by +3 pt: tempering (+5.5 pt) and the tempering
    margin (+4 pt) stay decided; MixUp (tau=4) near the top (2.25 pt inside the margin), its +2.5 pt
    over tau=1 and H15's 1.5-pt lead are withdrawn. A +0.5 pt move withdraws nothing."""
    from kdrepro.chapters import augmentation

    h4, h15 = augmentation.findings(policy_table(PAPER_LIKE, long=(0.82, 0.725, 0.05)))
    assert outcomes(h4) == ["inconclusive", "holds", "holds", "inconclusive", "holds", "holds"]
    assert h4.checks[1].note.startswith("agreement: doubling the student steps moved it +3.0 pt")
    assert "less than its distance from the threshold (" in h4.checks[1].note
    assert "so the check held only at this length" in h4.checks[0].note
    assert outcomes(h15) == ["inconclusive"] and h4.status == "partly reproduced"
    h4, h15 = augmentation.findings(policy_table(PAPER_LIKE, long=(0.795, 0.725, 0.05)))
    assert outcomes(h4) == ["holds"] * 6 and outcomes(h15) == ["holds"]
    # a failing check is withdrawn the same way
    miscalibrated = {**PAPER_LIKE, "mixup_t4": (0.86, 0.745, 0.09, 0.83)}
    h15 = augmentation.findings(policy_table(miscalibrated, long=(0.82, 0.725, 0.05)))[1]
    assert outcomes(h15) == ["inconclusive"] and h15.status != "not reproduced"


def test_h4_and_h15_need_fitted_teachers_and_no_nan_trial():
    from kdrepro.chapters import augmentation

    table = policy_table(PAPER_LIKE)
    table.loc[0, "clean_train_accuracy"] = 0.985
    assert [f.status for f in augmentation.findings(table)] == ["inconclusive", "inconclusive"]
    table = policy_table(PAPER_LIKE)
    table.loc[table[table.policy == "mixup"].index[0], "agreement"] = float("nan")
    with pytest.raises(ValueError, match="trials are NaN"):
        augmentation.findings(table)


def test_every_finding_has_exactly_one_home():
    from kdrepro import chapters

    judged = [key for chapter in chapters.CHAPTERS.values() for key in chapter.FINDINGS]
    assert len(judged) == len(set(judged)) and not set(judged) & set(report.NOT_RUN)
    # the paper's 15 findings, and the follow-up's two (Nagarajan et al., 2023)
    assert sorted(judged + list(report.NOT_RUN)) == sorted(
        [f"H{i}" for i in range(1, 16)] + ["F1", "F2"]
    )


# Chapter 5's budget cells, (split, m, tau) -> (accuracy, agreement, kl, ece), in the pattern of
# Figs. 4 and 9: s1 less accurate, more faithful and better calibrated than s0, s0∪1 above both
# midpoints; tau = 4 ahead of tau = 1 by 2-4 pt and of tau = 8 by 0.5 pt; agreement rising from
# m = 1 to 3 at every tau.
SPLIT_CELLS = {
    ("s0", 1, 1.0): (0.580, 0.66, 0.30, 0.05),
    ("s0", 1, 4.0): (0.600, 0.70, 0.28, 0.05),
    ("s0", 1, 8.0): (0.595, 0.695, 0.28, 0.05),
    ("s0", 3, 1.0): (0.583, 0.69, 0.27, 0.05),
    ("s0", 3, 4.0): (0.620, 0.74, 0.25, 0.05),
    ("s0", 3, 8.0): (0.615, 0.735, 0.25, 0.05),
    ("s1", 3, 4.0): (0.600, 0.76, 0.20, 0.03),
    ("s01", 3, 4.0): (0.615, 0.755, 0.21, 0.035),
}
STILL = (0.001, 0.002, -0.002, -0.001)  # doubling the key cell's steps moved it 0.1-0.2 pt


def split_table(cells=SPLIT_CELLS, long=None, fit=0.995):
    """Chapter 5's budget plan as a results table: each student's metrics from `cells`; its length
    control's (s0, m = 3, tau = 4 at 2x the steps) are that cell's plus `long` (the control is left
    out when None); each row jittered; teachers at eval-mode train accuracy `fit`."""
    from kdrepro.chapters import recycling

    rows = [
        {
            "role": "teacher",
            "member": k,
            "accuracy": 0.6,
            "train_accuracy": 0.99,
            "clean_train_accuracy": fit,
            "late_change": 0.0,
        }
        for k in range(9)
    ]
    e = noise()
    for labels, _ in recycling.plan("budget").rows:
        if labels["role"] != "student" or (labels["length"] > 1 and long is None):
            continue
        values = cells[labels["split"], labels["m"], labels["tau"]]
        if labels["length"] > 1:
            values = [x + dx for x, dx in zip(values, long)]
        acc, agr, kl, ece = values
        w = (labels["trial"] - 1) * 0.002
        rows.append(
            {
                **labels,
                "accuracy": acc + w + e(),
                "agreement": agr + w + e(),
                "kl": kl + w / 10 + e() / 10,
                "ece": ece + w / 10 + e() / 10,
                "late_change": 0.0,
            }
        )
    return pd.DataFrame(rows)


def test_h5_and_h11_rules():
    from kdrepro.chapters import recycling

    h5, h11 = recycling.findings(split_table(long=STILL))
    assert outcomes(h5) == ["holds"] * 8 and h5.status == "reproduced"
    assert h5.checks[6].what.endswith(
        "s0∪1 nearer the better of s0 and s1 in KL (below their midpoint)"
    )
    # tau = 4 against 1 and 8 at m = 1 and at m = 3; agreement from m = 1 to 3 at tau = 1, 4 and
    # 8; App. B.1 (context)
    assert outcomes(h11) == ["holds"] * 8 and h11.status == "reproduced"
    assert [c.core for c in h11.checks] == [True] * 7 + [False]
    assert h5.checks[4].here.startswith("s0∪1 − (s0 + s1) / 2 +0.4 pt")
    assert h5.checks[2].here.startswith("s1 − s0 −0.050 nats")
    assert h5.checks[2].here.endswith("nats (3 trials)") and "half-width" in h5.checks[4].here
    assert h11.checks[3].what == "m = 3: τ = 4 at least as accurate as τ = 8 (within 0.33 pt)"
    assert h11.checks[3].paper == "τ = 4 best in every row (+0.66 pt over τ = 8 at m = 3)"
    assert h11.checks[1].paper == "τ = 4 best in every row (+1.46 pt over τ = 8 at m = 1)"
    assert all(
        "less than its distance from the threshold (" in c.note
        for c in h5.checks + h11.checks
        if c.core
    )
    assert h5.checks[2].note.startswith("doubling the student steps moved it −0.002 nats")
    # the margins come from Fig. 9's printed values, each smaller than the effect it tests
    assert recycling.TAU_MARGIN == pytest.approx(0.0033)
    assert recycling.M_MARGIN == pytest.approx(0.00725)


def test_h5_and_h11_fail_where_the_papers_pattern_is_reversed():
    """Every core check can fail: the opposite of each claim, clearly beyond its margin."""
    from kdrepro.chapters import recycling

    reverse = {
        ("s0", 1, 1.0): (0.62, 0.70, 0.30, 0.05),
        ("s0", 1, 4.0): (0.60, 0.70, 0.28, 0.05),
        ("s0", 1, 8.0): (0.62, 0.70, 0.28, 0.05),
        ("s0", 3, 1.0): (0.64, 0.66, 0.27, 0.05),
        ("s0", 3, 4.0): (0.60, 0.68, 0.20, 0.03),
        ("s0", 3, 8.0): (0.62, 0.66, 0.25, 0.05),
        ("s1", 3, 4.0): (0.62, 0.66, 0.25, 0.05),
        ("s01", 3, 4.0): (0.60, 0.66, 0.24, 0.045),
    }
    h5, h11 = recycling.findings(split_table(reverse, long=STILL))
    assert outcomes(h5) == ["fails"] * 8 and h5.status == "not reproduced"
    assert [c.outcome for c in h11.checks if c.core] == ["fails"] * 7
    assert h11.status == "not reproduced"


def test_the_tolerances_are_smaller_than_the_effects_they_test():
    from kdrepro.chapters import recycling

    # s0∪1 as accurate as the worse split (s1), 1 pt below s0: the old ±1.5 pt "best of both"
    # held; the midpoint fails
    like_s1 = {
        **SPLIT_CELLS,
        ("s1", 3, 4.0): (0.610, 0.76, 0.20, 0.03),
        ("s01", 3, 4.0): (0.610, 0.755, 0.21, 0.035),
    }
    assert recycling.findings(split_table(like_s1))[0].checks[4].outcome == "fails"
    # ... while 0.3 pt below s0 (nearer it than s1) holds
    near = {**SPLIT_CELLS, ("s01", 3, 4.0): (0.617, 0.755, 0.21, 0.035)}
    assert recycling.findings(split_table(near))[0].checks[4].outcome == "holds"
    # tau = 8 a point more accurate than tau = 4 at m = 3: the old ±1.5 pt held; 0.33 pt fails
    hot = {**SPLIT_CELLS, ("s0", 3, 8.0): (0.630, 0.735, 0.25, 0.05)}
    h11 = recycling.findings(split_table(hot))[1]
    assert h11.checks[3].outcome == "fails" and h11.status == "not reproduced"
    # 0.2 pt behind tau = 4 is within the margin (the paper's own closest gap is 0.66 pt)
    close = {**SPLIT_CELLS, ("s0", 3, 8.0): (0.618, 0.735, 0.25, 0.05)}
    assert recycling.findings(split_table(close))[1].checks[3].outcome == "holds"


def test_chapter_5s_length_control_withdraws_what_doubling_matches():
    from kdrepro.chapters import recycling

    # doubling s0 (m = 3, tau = 4) adds 1 pt of agreement and takes 0.06 nats off its KL: H5's
    # 0.5-pt agreement effect (s0∪1 above the midpoint) and 0.05-nat KL effect are no larger, so
    # no longer decided; its 2-pt agreement effect (s1 over s0) and H11's 3-4 pt rises in m are
    moved = (0.0, 0.01, -0.06, 0.0)
    h5, h11 = recycling.findings(split_table(long=moved))
    assert outcomes(h5) == ["holds", "holds", "inconclusive", "holds", "holds", "inconclusive"] + [
        "inconclusive",  # s0∪1's 0.015 nats below the KL midpoint: doubling moved KL 0.06
        "holds",
    ]
    assert "so the check held only at this length" in h5.checks[5].note
    assert h5.checks[2].note.startswith("doubling the student steps moved it −0.060 nats")
    assert "at least its distance from the threshold (0.050 nats)" in h5.checks[2].note
    assert h5.status == "partly reproduced"
    assert outcomes(h11)[4:7] == ["holds"] * 3
    assert "less than its distance from the threshold (" in h11.checks[4].note
    # a failure is withdrawn the same way: s1 agrees 0.5 pt less than s0, doubling moved 1 pt
    worse = {**SPLIT_CELLS, ("s1", 3, 4.0): (0.600, 0.735, 0.20, 0.03)}
    assert recycling.findings(split_table(worse, long=moved))[0].checks[1].outcome == "inconclusive"
    assert recycling.findings(split_table(worse))[0].checks[1].outcome == "fails"


def test_chapter_5_needs_teachers_that_fit_and_refuses_nan_trials():
    from kdrepro.chapters import recycling

    h5, h11 = recycling.findings(split_table(fit=0.98))
    assert {h5.status, h11.status} == {"inconclusive"}
    assert "9 of 9 teachers do not fit" in h5.unconverged
    table = split_table()
    table.loc[(table.split == "s1") & (table.trial == 0), "accuracy"] = float("nan")  # diverged
    with pytest.raises(ValueError, match="1 of 3 trials are NaN"):
        recycling.findings(table)


def train_agreement_table(policies, extra=(0.99, 0.96), trials=3):
    """policies: policy -> (train agreement, test agreement); extra: train agreement at +0 and +4000
    images (m = 1)."""
    rows = [
        {
            "role": "teacher",
            "member": k,
            "accuracy": 0.6,
            "train_accuracy": 0.99,
            "late_change": 0.0,
        }
        for k in range(3)
    ]
    e = noise()
    for t in range(trials):
        w = (t - 1) * 0.002
        for policy, (train_agr, agr) in policies.items():
            rows.append(
                {
                    "role": "student",
                    "source": "policy",
                    "m": 5,
                    "policy": policy,
                    "trial": t,
                    "train_agreement": train_agr + w + e(),
                    "agreement": agr + w + e(),
                    "late_change": 0.0,
                }
            )
        for size, train_agr in zip((0, 4000), extra):
            rows.append(
                {
                    "role": "student",
                    "source": "extra",
                    "m": 1,
                    "extra": size,
                    "trial": t,
                    "train_agreement": train_agr + w + e(),
                    "agreement": 0.8 + w + e(),
                    "late_change": 0.0,
                }
            )
    return pd.DataFrame(rows)


def test_h6_rules():
    from kdrepro.chapters import train_agreement

    paper_like = {
        "baseline": (0.995, 0.80),
        "rotation": (0.85, 0.81),
        "vflip": (0.86, 0.79),
        "color_jitter": (0.88, 0.80),
        "combined": (0.62, 0.805),
    }
    (h6,) = train_agreement.findings(train_agreement_table(paper_like))
    assert outcomes(h6) == ["holds"] * 10 and h6.status == "reproduced"
    assert [c.core for c in h6.checks] == [True] * 6 + [
        False
    ] * 4  # levels the paper states are context
    assert h6.checks[4].here.startswith(
        "test agreement, Combined − mean of Rotation, Vertical flip, ColorJitter +0.5"
    )
    # augmentation does not lower train agreement; Combined fits best and is the least faithful on
    # the test set
    flat = {
        "baseline": (0.80, 0.80),
        "rotation": (0.80, 0.81),
        "vflip": (0.80, 0.79),
        "color_jitter": (0.80, 0.80),
        "combined": (0.85, 0.70),
    }
    (h6,) = train_agreement.findings(train_agreement_table(flat, extra=(0.90, 0.95)))
    # (equal means: never the paper's direction; with noise, one in twenty such checks comes out on
    # the other side)
    assert (
        "holds" not in outcomes(h6)[:3]
        and outcomes(h6)[3:6] == ["fails"] * 3
        and h6.status == "not reproduced"
    )
    # chapter 4's budget recipe cuts the augmentations: no policy students, Fig. 5 right left out
    (h6,) = train_agreement.findings(train_agreement_table({}))
    assert len(h6.checks) == 1 and "extra distillation data" in h6.checks[0].what
    # ... and its verdict says so (a profile with the policies needs no such caveat)
    assert h6.caveat.startswith("Only the extra-data half of H6 (Fig. 5 left) is checked")
    assert train_agreement.findings(train_agreement_table(paper_like))[0].caveat == ""
    # chapter 3's length control guards the extra-data check: the m = 1, +0 student at twice the
    # steps; doubling moving train agreement by 4 pt withdraws a 3-pt fall, by 1 pt keeps it
    table = train_agreement_table({}).assign(length=1)
    for moved, kept in ((0.04, False), (0.01, True)):
        base = table[(table.role == "student") & (table.extra == 0)]
        doubled = base.assign(length=2, train_agreement=base.train_agreement + moved)
        (h6,) = train_agreement.findings(pd.concat([table, doubled], ignore_index=True))
        check = h6.checks[0]
        assert check.outcome == ("holds" if kept else "inconclusive")
        assert check.note.startswith(
            "doubling the steps of m = 1 students without extra data moved train agreement +"
        )


def test_h6_reads_the_eval_mode_fresh_pass_where_every_student_has_it():
    """Fig. 5 (right) re-evaluates students in eval mode on a fresh augmented pass; the running
    value is only the fallback for runs that predate it, and each check says which it read."""
    from kdrepro.chapters import train_agreement

    paper_like = {
        "baseline": (0.995, 0.80),
        "rotation": (0.85, 0.81),
        "vflip": (0.86, 0.79),
        "color_jitter": (0.88, 0.80),
        "combined": (0.62, 0.805),
    }
    table = train_agreement_table(paper_like)
    students = table.role == "student"
    table.loc[students, "eval_train_agreement"] = table.loc[students, "train_agreement"]
    table.loc[students, "train_agreement"] = 0.5  # the running value: flat, it would decide nothing
    (h6,) = train_agreement.findings(table)
    assert h6.status == "reproduced" and h6.checks[0].here.endswith(
        "(eval mode, one fresh augmented pass)"
    )
    table.loc[table.index[-1], "eval_train_agreement"] = float(
        "nan"
    )  # one student predates the pass
    (h6,) = train_agreement.findings(table)
    assert h6.status != "reproduced" and "running, train mode" in h6.checks[0].here


LAMS = {
    0.25: 0.804,
    0.375: 0.975,
    0.5: 0.998,
    0.75: 0.996,
    0.875: 0.999,
    1.0: 1.0,
}  # Fig. 6b's pattern


def optimization_table(
    default=0.79,
    sgd=(0.813, 0.834),
    adam=(0.805, 0.829),
    lams=None,
    trials=3,
    late=0.0,
    barriers=(0.5, 0.3, 0.0, 0.0),
    shared=(0.0, 0.0, 0.01),
    long=None,
    ridge=1.0,
):
    """Fig. 6's pattern by default: train agreement per run (durations 3 and 9; lambda -> train
    agreement), loss barriers of the lambda = 0, 0.25, 0.375 and 0.5 students, and Table 1's
    students over 5 trials (shared init: `shared` = its agreement, relative KL and CKA offsets).
    Each row has its own jitter, so paired differences vary."""
    from kdrepro.chapters import optimization

    lams = lams or LAMS
    jitter = iter(np.random.default_rng(0).normal(0, 0.001, 10_000))
    rows = [
        {"role": "teacher", "trial": t, "train_accuracy": 0.99, "late_change": 0.0}
        for t in range(5)
    ]
    for t in range(5):
        w = (t - 1) * 0.001
        cka = {f"cka_stage{k}": 0.9 + next(jitter) for k in (1, 2, 3)}
        base = {
            "role": "student",
            "trial": t,
            "optimizer": "sgd",
            "duration": 1.0,
            "agreement": 0.77 + next(jitter),
            "kl": 0.8 + next(jitter),
        }
        rows.append(
            {
                **base,
                "init": "random",
                "lam": 0.0,
                "train_agreement": default + w + next(jitter),
                "late_change": late,
                "loss_barrier": barriers[0] + abs(next(jitter)) if t < trials else None,
                "loss_ridge": barriers[0] * ridge if t < trials else None,
                **cka,
            }
        )
        rows.append(
            {
                **base,
                "init": "shared",
                "lam": None,
                "train_agreement": default + w,
                "late_change": 0.0,
                "agreement": base["agreement"] + shared[0] + next(jitter),
                "kl": base["kl"] * (1 + shared[1]) + next(jitter),
                **{k: x + shared[2] + next(jitter) / 5 for k, x in cka.items()},
            }
        )
        if t >= trials:
            continue
        if (
            long is not None
        ):  # the length control: the default student at 2x, moved by `long` (train, test)
            rows.append(
                {
                    **base,
                    "init": "random",
                    "lam": None,
                    "length": 2,
                    "late_change": 0.0,
                    "train_agreement": default + long[0] + w + next(jitter),
                    "agreement": base["agreement"] + long[1] + next(jitter),
                }
            )
        for opt, values in (("sgd", sgd), ("adam", adam)):
            for k, a in zip((3.0, 9.0), values):
                rows.append(
                    {
                        "role": "student",
                        "trial": t,
                        "init": "random",
                        "optimizer": opt,
                        "duration": k,
                        "lam": None,
                        "train_agreement": a + w + next(jitter),
                        "late_change": late,
                    }
                )
        for lam in optimization.LAMBDAS[1:]:
            barrier = dict(zip((0.25, 0.375, 0.5), barriers[1:])).get(lam)
            rows.append(
                {
                    "role": "student",
                    "trial": t,
                    "init": "interpolate",
                    "optimizer": "sgd",
                    "duration": 1.0,
                    "lam": lam,
                    "train_agreement": min(1.0, lams[lam] + w + next(jitter)),
                    "late_change": 0.0,
                    "loss_barrier": None
                    if barrier is None
                    else barrier + (abs(next(jitter)) if barrier else 0),
                    "loss_ridge": None if barrier is None else barrier * ridge,
                }
            )
    table = pd.DataFrame(rows)
    table["lam"] = table.lam.astype(float)
    table["loss_barrier"] = table.loss_barrier.astype(float)
    table["loss_ridge"] = table.loss_ridge.astype(float)
    table["length"] = table.length.fillna(1) if "length" in table else 1
    return table


def test_steepness_finds_the_papers_threshold():
    from kdrepro.chapters import optimization

    ratio, where = optimization.steepness(pd.DataFrame([optimization.PAPER_6B]))
    assert where.iloc[0] == (0.25, 0.375)  # (97.55 - 80.39) / 0.125 over (100 - 78.96) / 1
    assert ratio.iloc[0] == pytest.approx((97.55 - 80.39) / 0.125 / (100 - 78.96))
    # no net rise: no multiple of it
    flat = optimization.steepness(pd.DataFrame([{0.0: 0.9, 0.5: 0.95, 1.0: 0.9}]))[0]
    assert flat.isna().all()


def test_h7_and_h8_rules():
    from kdrepro.chapters import optimization

    h7, h8, h9 = optimization.findings(optimization_table())
    assert outcomes(h7) == ["holds"] * 4 and h7.status == "reproduced"
    assert outcomes(h8) == ["holds"] * 6 and h8.status == "reproduced"
    # budget runs Adam at the shorter length only: Adam is compared with SGD where both ran
    table = optimization_table()
    h7, _, _ = optimization.findings(table[(table.optimizer != "adam") | (table.duration != 9.0)])
    assert [c.what for c in h7.checks][1:] == [
        "9× longer training gains only a few points (at most 5 pt, our margin)",
        "Adam below SGD at equal length (3×)",
    ]
    assert h7.status == "reproduced"
    assert "at λ 0.25 → 0.375 (3 trials)" in h8.checks[-1].here and not h8.checks[-1].core
    assert [c.what.split(":")[0] for c in h8.checks[2:4]] == ["λ = 0", "λ = 0.5"]
    # longer training gains 15 points, Adam beats SGD, no threshold in lambda
    h7, h8, _ = optimization.findings(
        optimization_table(
            sgd=(0.85, 0.94),
            adam=(0.87, 0.96),
            lams={0.25: 0.85, 0.375: 0.87, 0.5: 0.90, 0.75: 0.95, 0.875: 0.98, 1.0: 1.0},
        )
    )
    assert outcomes(h7) == ["holds", "fails", "fails", "fails"] and h7.status == "not reproduced"
    assert outcomes(h8)[:2] == ["fails", "fails"] and h8.status == "not reproduced"
    assert outcomes(h8)[-1] == "fails"  # no step steeper than 3x the average: no threshold anywhere
    # the lambda = 0.5 student still behind a barrier: it did not reach the teacher's basin
    _, h8, _ = optimization.findings(optimization_table(barriers=(0.5, 0.3, 0.3, 0.3)))
    assert outcomes(h8)[2:4] == ["holds", "fails"]
    assert h8.checks[3].here.startswith(
        "barrier above 5 % of the student's excess loss (and above 0.001 nats) in 3 of 3 trials "
        "(medians, each taken over the trials on its own: barrier 30"
    )
    # the same ratios on ridges under 10^-3 nats (an excess of 10^-3 nats: a student at its
    # teacher) are rounding, not basins: λ = 0 then shows none, λ = 0.5 no barrier
    _, h8, _ = optimization.findings(optimization_table(barriers=(0.5, 0.3, 0.3, 0.3), ridge=1e-3))
    assert outcomes(h8)[2:4] == ["fails", "holds"]
    # a barrier is never negative: a ridge of 4 % at lambda = 0 is no basin of its own, whatever its
    # t interval
    _, h8, _ = optimization.findings(optimization_table(barriers=(0.04, 0.03, 0.0, 0.0)))
    assert outcomes(h8)[2:4] == ["fails", "holds"]
    # the default run still moving does not gate H7 (training length is its variable); the longest
    # runs do
    h7, _, _ = optimization.findings(optimization_table(late=0.03))
    assert h7.status == "inconclusive" and "students' train agreement moved" in h7.reason


def test_chapter_7s_length_control_withdraws_what_doubling_matches():
    from kdrepro.chapters import optimization

    h7, h8, h9 = optimization.findings(optimization_table(long=(0.01, 0.002)))
    assert (
        outcomes(h8)[:2] == ["holds", "holds"]
        and "less than its distance from the threshold" in h8.checks[0].note
    )
    assert outcomes(h9)[0] == "holds" and h7.status == "reproduced"
    # doubling the default student adds 20 points of train agreement, more than the threshold's +17
    # pt curvature, and 3 points of test agreement, more than Table 1's margin: those checks are no
    # longer decided
    h7, h8, h9 = optimization.findings(optimization_table(long=(0.20, 0.03)))
    assert outcomes(h8)[:2] == ["inconclusive", "holds"] and outcomes(h9)[0] == "inconclusive"
    # a level moving up cannot fall below 99.5 %; the students doubled are the default ones
    assert h8.checks[1].note.startswith(
        "doubling the steps of the default (λ = 0) student moved train agreement +20.0 pt"
    ) and h8.checks[1].note.endswith("away from the threshold")
    # ... while a level that fails is withdrawn when doubling moves it toward its threshold by more
    # than it missed
    _, h8, _ = optimization.findings(optimization_table(long=(0.05, 0.0), lams={**LAMS, 0.5: 0.97}))
    assert outcomes(h8)[1] == "inconclusive" and "so the check failed only" in h8.checks[1].note
    _, h8, _ = optimization.findings(
        optimization_table(long=(-0.05, 0.0), lams={**LAMS, 0.5: 0.97})
    )
    assert outcomes(h8)[1] == "fails"
    assert h7.status == "reproduced"  # H7 varies the length itself: no guard


def test_h9_rules():
    from kdrepro.chapters import optimization

    _, _, h9 = optimization.findings(optimization_table())
    assert (
        outcomes(h9) == ["holds"] * 5
        and h9.status == "reproduced"
        and h9.checks[0].here.count("[") == 1
    )
    assert [c.core for c in h9.checks] == [True, True, False, False, False]
    # the teacher's initial weights buy 3 points of agreement and 20 % less KL: a functional
    # difference
    _, _, h9 = optimization.findings(optimization_table(shared=(0.03, -0.2, 0.0)))
    assert outcomes(h9)[:2] == ["fails", "fails"] and h9.status == "not reproduced"


def test_the_init_effect_sentence_without_chapter_7_in_the_store(tmp_store):
    from kdrepro.chapters import optimization

    assert optimization.init_effect("smoke") == (
        "Chapter 7's Table 1 measures what that does (its runs are not in this result store yet)"
    )


def test_a_chapter_at_another_scale_shows_its_verdicts_once_every_run_is_stored():
    (_, _, table), *_ = report.tables("lenet_mnist", "budget")
    scope = "the `budget` recipe of kdrepro/chapters/lenet_mnist.py"
    assert report.at_scale("lenet_mnist", "budget") == lenet_mnist.findings(table, scope)[0].text()
    done, total = report.progress("self_vs_ensemble", "gpu")
    assert report.at_scale("self_vs_ensemble", "gpu") == (
        f"The gpu profile has not been run: {done} of its {total} runs are stored."
    )
    assert report.at_scale("lenet_mnist", "gpu") == "This chapter has no gpu profile."


def test_chapter_3_pairs_each_first_run_with_its_rerun():
    first = self_vs_ensemble.first_runs(plan.Plan("self_vs_ensemble", "budget", [], {}))
    assert first.empty  # nothing to pair
    assert self_vs_ensemble.first_runs(
        chapters.plan("self_vs_ensemble", "budget")
    ).empty  # converged: none
    first = self_vs_ensemble.first_runs(self_vs_ensemble.plan("budget", converged=False))
    # the first runs' init seed was their trial's: trial 0 (and every m = 1 trial) is a teacher's,
    # trial 1 a control member's at m = 3 and 5, the rest a fresh random init
    assert first.groupby("start").size().to_dict() == {
        "own teacher": 13,
        "control member": 3,
        "random": 7,
    }
    assert set(first[first.m == 1].start) == {"own teacher"}


def true_labels_table(trials=5):
    """Chapter 9's students, m = 1 and 3 at alpha = 0, 0.1 and 0.5: the true labels leave agreement
    alone and raise accuracy only at m = 1. Teachers fit their images."""
    rows = [
        {"role": "teacher", "train_accuracy": 1.0, "clean_train_accuracy": 1.0, "late_change": 0.0}
    ]
    e = noise()
    for m in (1, 3):
        for alpha in (0.0, 0.1, 0.5):
            rows += [
                {
                    "role": "student",
                    "trial": t,
                    "m": m,
                    "alpha": alpha,
                    "length": 1,
                    "agreement": 0.8 + (t - 2) * 0.002 + e(),
                    "accuracy": 0.7 + (0.02 * alpha if m == 1 else 0) + (t - 2) * 0.002 + e(),
                    "late_change": 0.0,
                }
                for t in range(trials)
            ]
    return pd.DataFrame(rows)


def every_finding():
    """Every chapter's findings on the hand-made tables above, H1-H15 but H13, F1, F2."""
    from test_capacity import table as capacity_table
    from test_deviations import GAIN
    from test_deviations import table as deviations_table

    from kdrepro.chapters import (
        augmentation,
        capacity,
        deviations,
        optimization,
        recycling,
        train_agreement,
        true_labels,
    )

    teachers = [0.88, 0.90, 0.89, 0.91, 0.87]
    cells = {
        (1, 0): (0.80, 0.66, 0.65, 0.75),
        (1, 4000): (0.83, 0.64, 0.65, 0.76),
        (3, 0): (0.85, 0.68, 0.72, 0.80),
        (5, 0): (0.87, 0.69, 0.73, 0.81),
    }
    singles = {"baseline": (0.995, 0.80), "rotation": (0.85, 0.81), "vflip": (0.86, 0.79)}
    late = [0.53, 0.54, 0.54, 0.52, 0.53]
    return [
        *lenet_mnist.findings(lenet_table([0.93] * 5, [0.98] * 5, teachers, teachers)),
        *self_vs_ensemble.findings(ensemble_table(cells, {1: 5, 3: 5, 5: 3})),
        *augmentation.findings(policy_table(PAPER_LIKE)),
        *recycling.findings(split_table()),
        *train_agreement.findings(
            train_agreement_table({**singles, "color_jitter": (0.88, 0.8), "combined": (0.6, 0.8)})
        ),
        *optimization.findings(optimization_table()),
        *capacity.findings(capacity_table([0.010, 0.012, 0.008, 0.011, 0.009])),
        *true_labels.findings(true_labels_table()),
        *deviations.findings(deviations_table([-0.1] * 5, [0.0] * 5, {**GAIN, "late": late})),
    ]


def cells(line: str) -> list[str]:
    """A Markdown table row's cells (an escaped bar stays inside its cell)."""
    return [c.strip() for c in line.replace("\\|", "¦").strip().strip("|").split("|")]


def test_the_matrix_is_one_short_line_per_finding_in_the_papers_order():
    findings = every_finding()
    assert sorted(f.key for f in findings) == sorted(
        k for c in chapters.CHAPTERS.values() for k in c.FINDINGS
    )
    lines = report.matrix(findings, {}).splitlines()
    # one sentence first: how many findings are judged, and which cannot run
    assert lines[0].startswith("Judged here so far: 16 of 17 findings (H1, H2, H3,")
    assert lines[0].endswith(", F1, F2); H13 cannot run here.") and lines[1] == ""
    assert lines[2:4] == [
        "| # | finding | chapter | paper | here | verdict |",
        "|---|---|---|---|---|---|",
    ]
    rows = [cells(line) for line in lines[4:]]
    assert [r[0] for r in rows] == [f"H{i}" for i in range(1, 16)] + ["F1", "F2"]
    # a laptop screen: no cell runs past 120 characters, and every row has its six
    assert all(len(r) == 6 and max(map(len, r)) <= 120 for r in rows), max(
        (max(map(len, r)), r) for r in rows
    )
    # the chapter the prose cites each finding by: a link once the chapter is in the book
    number = {r[0]: r[2] for r in rows}
    for key, name, n in (
        ("H1", "lenet_mnist", 2),
        ("H2", "self_vs_ensemble", 3),
        ("H7", "optimization", 7),
        ("F1", "deviations", 10),
    ):
        assert number[key] == (
            f"{{doc}}`{n} <{name}>`" if name in chapters.PUBLISHED else str(n)
        ), key
    assert number["H1"] == "{doc}`2 <lenet_mnist>`" and number["F1"] == "10"
    by_key = {f.key: f for f in findings}
    for key, title, _, paper, here, verdict in rows:
        if key in report.NOT_RUN:
            assert (paper, here, verdict) == (
                report.NOT_RUN[key].paper,
                report.NOT_RUN[key].why,
                "—",
            )
            continue
        f = by_key[key]
        assert verdict == f"**{f.status}** ({f.tally})" and here.endswith(f"({f.headline.result})")
        assert "[" in here and "trials" in here  # the number, its interval and n


def test_the_matrix_shows_each_findings_headline_and_the_progress_of_the_rest():
    teachers = [0.88, 0.90, 0.89, 0.91, 0.87]
    (h1,) = lenet_mnist.findings(
        lenet_table(
            [0.93, 0.92, 0.94, 0.93, 0.95], [0.993, 0.992, 0.994, 0.991, 0.995], teachers, teachers
        )
    )
    waiting = {k: "runs in progress: 3 of 9 stored" for k in ("H2", "H3", "H10")}
    lines = report.matrix([h1], waiting).splitlines()
    assert lines[0] == (
        "Judged here so far: 1 of 17 findings (H1); 15 wait for their chapter's runs; H13 cannot "
        "run here."
    )
    lines = lines[2:]  # the table
    assert lines[2] == (
        "| H1 | Near-perfect fidelity in an easy setting (LeNet-5, MNIST) | {doc}`2 <lenet_mnist>` "
        "| > 99 % (with up to "
        "700k EMNIST images; 60k MNIST is its smallest set) (§4.1, Fig. 2) | 99.3 % [99.1, 99.5] "
        "at 60,000 images, 5 trials (inconclusive — untestable without EMNIST-sized sets, "
        "≥ 175,000 images) | **partly reproduced** (2 of 3 core checks hold) |"
    )
    # a finding not yet judged shows the paper's number all the same, from its chapter's HEADLINES
    ch3 = "{doc}`3 <self_vs_ensemble>`" if "self_vs_ensemble" in chapters.PUBLISHED else "3"
    assert lines[3] == (
        f"| H2 | Self-distillation: low fidelity, yet the student can beat its teacher | {ch3} | "
        "≈ 72–75 % agreement; the student at least as accurate as its teacher (R56, CIFAR-100) "
        "(Fig. 1, §4) | "
        "runs in progress: 3 of 9 stored | — |"
    )
    assert lines[4].startswith("| H3 |") and lines[5].startswith("| H4 |")
    assert lines[4].endswith("(Fig. 1, §4) | runs in progress: 3 of 9 stored | — |")
    assert lines[5].endswith("(§5.1, Fig. 3) | not judged at this scale | — |")  # no progress given
    assert lines[14] == (
        "| H13 | Fidelity stays low beyond CIFAR (ImageNet, IMDB) | — | 85.5 / 87.8 / 88.4 % "
        "agreement at m = 1 / 3 / 5, ImageNet (Table 2) | cannot run here (no ImageNet or IMDB "
        "offline) | — |"
    )
    # runs that did not converge are named in the verdict, in a few words; the detail says which
    h1.unconverged = "5 of 5 teachers do not fit their training set"
    assert (
        report.matrix([h1], waiting)
        .splitlines()[4]
        .endswith("| **inconclusive** (runs not converged) |")
    )


def test_the_key_result_box_gives_each_verdict_its_headline_and_its_core_tally():
    def check(outcome, core=True, **kw):
        return v.Check("c", "Fig. 1", "> 99 %", "here", outcome, core=core, **kw)

    first = v.Finding(
        "H1",
        "Easy fidelity",
        [check(v.HOLDS, value="98.0 % [97.6, 98.5]"), check(v.FAILS), check(v.HOLDS, core=False)],
        "LeNet-5, MNIST",
    )
    second = v.Finding(
        "H2",
        "Low fidelity",
        [check(v.INCONCLUSIVE), check(v.HOLDS, value="+1.0 pt [0.2, 1.8]", headline=True)],
        "LeNet-5, MNIST",
        unconverged="1 of 3 teachers do not fit",
    )
    assert report.key_result([first, second]).split("\n\n") == [
        "**H1, not reproduced.** Easy fidelity. The paper: > 99 % (Fig. 1); here: 98.0 % [97.6, "
        "98.5] (holds). 1 of 2 core checks holds, 1 fails. C: fails.",
        "**H2, inconclusive.** Low fidelity. The paper: > 99 % (Fig. 1); here: +1.0 pt [0.2, 1.8] "
        "(holds). 1 of 2 core checks holds; some runs did not converge, so the verdict is "
        "inconclusive whatever they say.",
        "Scale: LeNet-5, MNIST.",
    ]
    assert [report.sentence(w) for w in ("c", "λ = 0.5: ends", "τ = 4", "")] == [
        "C",
        "λ = 0.5: ends",
        "τ = 4",
        "",
    ]
    # fresh seeds: the core checks both ran, compared one by one (H1's second runs only here)
    main = v.Finding(
        "H1", "Easy fidelity", [check(v.HOLDS, value="98.0 %"), replace(check(v.FAILS), what="d")]
    )
    fresh = v.Finding(
        "H1", "Easy fidelity", [check(v.INCONCLUSIVE), replace(check(v.FAILS), what="d")]
    )
    assert report.key_result([main], [fresh]).split("\n\n")[1] == (
        "**Fresh seeds** (new teachers, subsets and student seeds): 1 of the 2 core checks that "
        "both ran keep their outcome; 1 moved (H1: holds → inconclusive)."
    )


def test_every_chapter_cites_the_papers_headline_of_each_of_its_findings_once():
    for name, chapter in chapters.CHAPTERS.items():
        assert set(chapter.HEADLINES) == set(chapter.FINDINGS), name
        assert all(
            isinstance(h, tuple) and len(h) == 2 and all(h) for h in chapter.HEADLINES.values()
        ), name
    # every judged headline cites its chapter's words, so a row reads the same judged or pending
    for f in every_finding():
        chapter = next(c for c in chapters.CHAPTERS.values() if f.key in c.FINDINGS)
        assert (f.headline.source, f.headline.paper) == chapter.HEADLINES[f.key], f.key
    # with nothing judged, every row the chapters own shows the paper's headline number
    lines = report.matrix([], {"H12": "runs in progress: 20 of 40 stored"}).splitlines()
    rows = {r[0]: r for r in map(cells, lines[4:])}
    for chapter in chapters.CHAPTERS.values():
        for key, (source, paper) in chapter.HEADLINES.items():
            assert rows[key][3] == f"{paper} ({source})".replace("|", "¦")
            assert rows[key][5] == "—" and len(rows[key][3]) <= 120
    assert rows["H12"][3:] == [
        "R20 → R56 student: +2–3 pt agreement; R56 → R110: ≈ 0 (App. C.1, Fig. 12)",
        "runs in progress: 20 of 40 stored",
        "—",
    ]


def test_the_detail_lists_every_check_and_says_what_did_not_converge_once():
    cells_ = {(1, 0): (0.80, 0.66, 0.65, 0.75), (3, 0): (0.85, 0.68, 0.72, 0.80)}
    table = ensemble_table(cells_, {1: 5, 3: 5})
    table.loc[0, "clean_train_accuracy"] = 0.985
    findings = self_vs_ensemble.findings(table)
    compute = pd.DataFrame(
        [
            {"experiment": "self_vs_ensemble", "runs": 13, "wall_hours": 2.5, "cpu_hours": 4.0}
            | {"cpu_runs": 3, "device": "AMD EPYC"},
            {"experiment": "recycling", "runs": 2, "wall_hours": 0.5, "cpu_hours": 0.0}
            | {"cpu_runs": 0, "device": "AMD EPYC"},
        ]
    )
    text = report.detail(findings, compute, {"H4": "runs in progress: 0 of 40 stored"})
    lines = text.splitlines()
    note = "1 of 3 teachers do not fit their training set"
    assert sum(note in line for line in lines) == len(findings) == 3  # once per finding
    h2 = lines.index(
        "#### H2: Self-distillation: fidelity is low, and the student can beat the teacher "
        "because of it"
    )
    assert lines[h2 + 1 : h2 + 8] == [
        "",
        f"Verdict: **inconclusive**. Scope: {self_vs_ensemble.SCOPE}.",
        "",
        "Runs not converged at this scale: 1 of 3 teachers do not fit their training set "
        "(eval-mode train accuracy 98.5–98.5 %, below 99 %).",
        "",
        "| kind | check | paper | here | outcome |",
        "|---|---|---|---|---|",
    ]
    rows = [cells(line) for line in lines[h2 + 8 :][: len(findings[0].checks)]]
    # the ceiling's bars are escaped: every row keeps its five cells
    assert [len(r) for r in rows] == [5] * len(findings[0].checks)
    assert [r[0] for r in rows] == ["core, headline", "core", "context"]
    assert rows[0][1] == (
        "agreement at least 10 points below the ceiling its accuracies allow (1 − ¦teacher − "
        "student accuracy¦)"
    )
    assert [r[4] for r in rows] == [f"**{c.outcome}**" for c in findings[0].checks[:2]] + [
        findings[0].checks[2].outcome
    ]
    assert "H4: their chapters' runs are in progress" in text
    assert lines[-5:] == [
        "| chapter | runs | wall hours | CPU hours | hardware |",
        "|---|---|---|---|---|",
        "| {doc}`self_vs_ensemble` | 13 | 2.50 | 4.00 (3 of 13 runs) | AMD EPYC |",
        "| {doc}`recycling` | 2 | 0.50 | not recorded | AMD EPYC |",
        "| **total** | 15 | 3.00 | 4.00 (3 of 15 runs) |  |",
    ]


def test_each_run_counts_once_in_the_compute_table():
    main = pd.DataFrame({"run_id": ["t0", "t0", "s0", "s1"], "wall_seconds": [10.0, 10.0, 1, 2]})
    fresh = pd.DataFrame({"run_id": ["t0", "s2"], "wall_seconds": [10.0, 3.0]})
    runs = report.runs_of([main, fresh])  # a teacher two students read, and two plans share
    assert sorted(runs.run_id) == ["s0", "s1", "s2", "t0"] and runs.wall_seconds.sum() == 16
    # in the store: the published chapters' runs, each once over all their plans
    _, compute = report.all_findings()
    for row in compute.itertuples():
        ids = {c.run_id for p in chapters.plans(row.experiment, "budget") for c in p.configs}
        assert row.runs == len(ids) == report.progress(row.experiment)[1]


def test_a_chapter_shows_a_findings_evidence_as_the_summary_does():
    findings = every_finding()
    f = next(f for f in findings if f.key == "H2")
    text = report.finding_markdown(f)
    lines = text.splitlines()
    assert lines[0] == f"**H2: {f.claim}**" and lines[2].startswith(f"Verdict: **{f.status}**.")
    assert "| kind | check | paper | here | outcome |" in lines
    # the summary's detail holds the same evidence under a heading
    compute = pd.DataFrame(
        [
            {"experiment": "self_vs_ensemble", "runs": 1, "wall_hours": 0.1, "cpu_hours": 0.2}
            | {"cpu_runs": 1, "device": "AMD EPYC"}
        ]
    )
    assert "\n".join(lines[2:]) in report.detail([f], compute, {})


def test_h14_states_no_rise_where_the_paper_does():
    from kdrepro.chapters import true_labels

    table = true_labels_table()
    table["m"] = table.m.astype("Int64")  # as Plan.table keeps integer labels
    (h14,) = true_labels.findings(table)
    core = [c.what.split(":")[0] for c in h14.checks if c.core]
    assert core == [
        "m = 1, α = 0.1",
        "m = 1, α = 0.5",
        "m = 1, α = 0.5",
        "m = 3, α = 0.5",
        "m = 3, α = 0.5",
    ]
    assert h14.headline.what.startswith("m = 1, α = 0.5") and "(α = 0.5)" in h14.headline.paper
    # the paper sees a slight benefit at α = 0.1 for ensembles: a rise there is context only
    bump = (table.m == 3) & (table.alpha == 0.1)
    table.loc[bump, "agreement"] += 0.03  # beyond the 1.5-pt margin
    (h14,) = true_labels.findings(table)
    slight = next(c for c in h14.checks if c.what.startswith("m = 3, α = 0.1: showing"))
    assert not slight.core and slight.outcome == "fails" and h14.status == "reproduced"
    # "does not raise" allows the book's 1.5 pt: a 1-pt rise at m = 1, α = 0.5 holds, 2.5 fails
    for rise, outcome in ((0.01, "holds"), (0.025, "fails")):
        t = true_labels_table()
        t.loc[(t.m == 1) & (t.alpha == 0.5), "agreement"] += rise
        (h14,) = true_labels.findings(t)
        assert h14.headline.outcome == outcome and h14.headline.what.endswith("(within 1.5 pt)")


def test_fresh_seeds_are_compared_on_the_core_checks_both_ran():
    def finding(key, **outcomes):
        checks = [v.Check(what, "Fig. 1", "p", "h", out) for what, out in outcomes.items()]
        context = v.Check("ctx", "Fig. 1", "p", "h", v.FAILS, core=False)
        return v.Finding(key, "claim", checks + [context])

    main = [finding("H2", a=v.HOLDS, b=v.HOLDS, extra=v.FAILS), finding("H3", a=v.HOLDS)]
    fresh = [finding("H2", a=v.HOLDS, b=v.INCONCLUSIVE), finding("H3", a=v.FAILS)]
    # the extra-data check the replication does not run and context checks are left out
    assert [(k, a.what, a.outcome, b.outcome) for k, a, b in report.shared_core(main, fresh)] == [
        ("H2", "a", v.HOLDS, v.HOLDS),
        ("H2", "b", v.HOLDS, v.INCONCLUSIVE),
        ("H3", "a", v.HOLDS, v.FAILS),
    ]
    assert report.shared_core(main, []) == []


def test_the_narrowest_call_names_the_kept_check_nearest_to_withdrawal():
    moved = v.Interval(0.03, 0.02, 0.04, 5)
    wide = v.guarded(v.Check("a", "Fig. 1", "rises", "h", v.HOLDS), 0.10, moved)
    narrow = v.guarded(v.Check("b", "Fig. 1", "falls", "h", v.FAILS), 0.031, moved)
    context = replace(
        v.guarded(v.Check("c", "Fig. 1", "x", "h", v.HOLDS), 0.0301, moved), core=False
    )
    findings = [v.Finding("H1", "one", [wide, context]), v.Finding("H2", "two", [narrow])]
    assert report.closest_call(findings) == (
        "The narrowest call: H2's “b” fails because its distance from the threshold (3.1 pt) "
        "exceeds what doubling moved it (+3.0 pt) by 0.1 pt, 3 % of that distance. The rule, fixed "
        "before the runs, keeps it; of the decided checks it is the closest to being withdrawn."
    )
    assert report.closest_call([v.Finding("H1", "one", [context])]) == ""


def test_a_fresh_seed_finding_is_not_titled_as_the_verdict():
    f = v.Finding("H2", "claim", [v.Check("a", "Fig. 1", "rises", "h", v.HOLDS, value="1")])
    text = report.finding_markdown(f, fresh=True)
    assert text.startswith("**H2 on fresh seeds (replication): claim**")
    assert "On these fresh seeds alone (not the verdict): **reproduced**" in text
    assert "Verdict:" not in text and "Verdict: **reproduced**" in report.finding_markdown(f)


def test_augmentations_runs_are_counted_in_prose_per_network_policy_and_length():
    from kdrepro.chapters import augmentation

    def rows(arch, teachers, **students):
        """`teachers` teacher rows, then n student rows per `policy=n` (`policy_x2`: at 2x)."""
        labels = [{"arch": arch, "role": "teacher"}] * teachers
        for key, n in students.items():
            policy, _, length = key.partition("_x")
            student = {"arch": arch, "role": "student", "policy": policy}
            labels += [{**student, "length": int(length or 1)}] * n
        return [(lab, None) for lab in labels]

    assert figures.listed(["a"]) == "a" and figures.listed(["a", "b", "c"]) == "a, b and c"
    assert augmentation.described(rows("preresnet8", 15, baseline=5), "preresnet8") == (
        "15 teachers and 5 Baseline students"
    )
    equal = rows("preresnet8", 0, mixup=2, baseline_x2=2)
    assert augmentation.described(equal, "preresnet8") == (
        "4 students, 2 for each of MixUp and the length control (Baseline at 2× the steps)"
    )
    # a part with a comma of its own: parts are then separated by semicolons
    commas = rows("preresnet8", 3, mixup=1, noise=1) + rows("vgg16", 2)
    assert augmentation.described(commas, "preresnet8") == (
        "3 teachers; 2 students, 1 for each of MixUp and Noise and 2 VGG-16 teachers"
    )
    mixed = rows("vgg16", 2, rotation=1) + rows("preresnet8", 3, baseline=2, noise=1)
    assert augmentation.described(mixed, "preresnet8") == (
        "3 teachers, 3 students (2 Baseline and 1 Noise), 2 VGG-16 teachers and 1 Rotation VGG-16 "
        "students"
    )


def test_chapter_7_says_when_h9s_agreement_check_cannot_hold():
    from kdrepro.chapters import optimization

    # doubling the default student's steps moves test agreement 2 pt: beyond H9's 1.5-pt margin
    table = optimization_table(long=(0.0, 0.02))
    check = optimization.findings(table)[2].checks[0]
    assert (check.outcome, check.why) == ("inconclusive", "the length control withdrew it")
    assert optimization.h9_reach(table) == (
        "The length control moved test agreement by +2.0 pt, more than H9's ±1.5-point margin "
        "itself. More trials would narrow the interval (at the spread of the paired differences "
        "here, sd 0.1 pt over 5 trials, about 2 trials to a half-width of 1.5 points, about 2 for "
        "an interval around the present mean (+0.0 pt) to fit inside ±1.5), but the check can "
        "hold only once that movement is inside the margin, with students nearer convergence: "
        "until then a difference within the margin is closer to 0 than the movement, and the "
        "guard withdraws it. (A reading of the fixed rules, added after the runs were seen.)"
    )
    # within the margin, or no control: nothing to say
    assert optimization.h9_reach(optimization_table(long=(0.0, 0.01))) == ""
    assert optimization.h9_reach(optimization_table()) == ""


def test_chapter_7_says_when_its_default_students_leave_no_gap_and_how_high_a_ridge_is():
    from kdrepro.chapters import optimization

    h7, h8, h9 = optimization.findings(optimization_table())  # Fig. 6a's 79 %: a gap to close
    assert h7.caveat == h8.caveat == h9.caveat == ""
    # 99.7 % plus the table's jitter: 99.66 % on average over Fig. 6's 3 trials (not Table 1's 5)
    h7, h8, _ = optimization.findings(optimization_table(default=0.997))
    assert h7.caveat == (
        "There is no train-agreement gap to close at this scale: the default students already "
        "agree with their teachers on 99.66 % of the augmented images in their distillation "
        "batches (the paper's: 79.0 %), which leaves longer training 0.34 points to add: here "
        "H7's checks cannot tell optimization that stalls from a gap that is not there. (A "
        "reading added after the runs were seen; the verdict is the fixed rules'.)"
    )
    assert h8.caveat.startswith("λ = 0's students already agree with their teachers on 99.66 %")
    # the caveat shows in the key-result box, the summary's matrix (once, below it) and its detail
    assert report.key_result([h7]).split("\n\n")[0].endswith(f"*Caveat:* {h7.caveat}")
    table = report.matrix([h7], {})
    assert f"**{h7.status}** ({h7.tally}) — see its caveat below" in table
    assert table.count(h7.caveat) == 1 and table.endswith(f"*Caveat on H7:* {h7.caveat}\n")
    assert f"*Caveat:* {h7.caveat}" in report.finding_markdown(h7)
    # the ridge and the excess it is a ratio of, in nats: 0.5 over a barrier of 0.5 plus jitter
    _, h8, _ = optimization.findings(optimization_table(barriers=(0.5, 0.3, 0.3, 0.3)))
    assert h8.checks[2].here.endswith(
        ", ridge 0.5 nats, the student's excess loss over its teacher 0.999 nats)"
    )
    assert optimization.ridge_nats(optimization_table().iloc[:0]) == ""


def test_an_unpublished_chapters_progress_in_words():
    assert report.progress_words(20, 40, "its 40 runs") == (
        "chapter in progress: 20 of its 40 runs stored"
    )
    # complete, it waits for the chapters before it: not "in progress"
    assert report.progress_words(39, 39, "its 39 runs") == (
        "all 39 runs stored; published after the chapters before it"
    )
    assert report.progress_words(75, 75, "the 75 runs it reads from other chapters") == (
        "all the 75 runs it reads from other chapters stored; published after the chapters "
        "before it"
    )
