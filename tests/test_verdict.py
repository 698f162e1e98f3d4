"""The verdict rules on synthetic per-trial tables: paired t intervals, three outcomes, core vs
context."""

import math
from dataclasses import replace

import pandas as pd
import pytest

from kdrepro import verdict as v


def two_conditions(a, b, col="agreement"):
    rows = [{"trial": t, "cond": 0, col: x} for t, x in enumerate(a)]
    rows += [{"trial": t, "cond": 1, col: x} for t, x in enumerate(b)]
    return pd.DataFrame(rows)


def test_t_quantiles_are_exact_in_the_table_and_close_beyond():
    assert v.t975(2) == 4.303 and v.t975(4) == 2.776 and v.t975(30) == 2.042
    assert abs(v.t975(60) - 2.000) < 2e-3 and abs(v.t975(120) - 1.980) < 2e-3
    with pytest.raises(ValueError):
        v.t975(0)


def test_interval_by_hand():
    iv = v.interval([0.0, 0.02, 0.04])  # mean 0.02, sd 0.02, se 0.02 / sqrt(3)
    half = 4.303 * 0.02 / math.sqrt(3)
    assert iv.mean == pytest.approx(0.02) and (iv.lo, iv.hi) == pytest.approx(
        (0.02 - half, 0.02 + half)
    )
    assert iv.n == 3 and v.interval([0.5]).lo == -math.inf


def test_the_h3_case_is_inconclusive():
    # per-seed changes +0.71, -0.50, +1.48 pt: the stored m = 3 runs before this rule existed
    before = [0.790, 0.772, 0.805]
    after = [b + d / 100 for b, d in zip(before, (0.71, -0.50, 1.48))]
    iv = v.paired(two_conditions(before, after), {"cond": 0}, {"cond": 1}, "agreement")
    assert iv.mean == pytest.approx(0.0056333, abs=1e-6)
    assert iv.lo < 0 < iv.hi and v.rises(iv) == v.INCONCLUSIVE


def test_a_consistent_rise_over_five_trials_holds():
    before = [0.70, 0.72, 0.69, 0.71, 0.73]
    after = [b + d for b, d in zip(before, (0.031, 0.029, 0.030, 0.032, 0.028))]
    iv = v.paired(two_conditions(before, after), {"cond": 0}, {"cond": 1}, "agreement")
    assert v.rises(iv) == v.HOLDS and v.falls(iv) == v.FAILS


def test_a_small_dip_inside_the_noise_is_inconclusive_not_failed():
    before = [0.9806, 0.9750, 0.9830]
    after = [0.9780, 0.9770, 0.9806]  # mean -0.1 pt, per-trial changes -0.26, +0.20, -0.24
    iv = v.paired(two_conditions(before, after), {"cond": 0}, {"cond": 1}, "agreement")
    assert iv.mean == pytest.approx(-0.001, abs=1e-6) and v.rises(iv) == v.INCONCLUSIVE


def test_pairing_uses_only_trials_present_in_both_conditions():
    table = two_conditions([0.5, 0.6, 0.7], [0.6, 0.7])  # trial 2 has no second condition
    iv = v.paired(table, {"cond": 0}, {"cond": 1}, "agreement")
    assert iv.n == 2 and iv.mean == pytest.approx(0.1)


def test_an_under_specified_condition_is_refused_not_cross_paired():
    table = pd.concat(
        [
            two_conditions([0.5, 0.6], [0.6, 0.7]).assign(m=1),
            two_conditions([0.5, 0.6], [0.6, 0.8]).assign(m=3),
        ]
    )
    with pytest.raises(ValueError, match=r"several rows per trial; name the condition fully"):
        v.paired(table, {"cond": 0}, {"cond": 1}, "agreement")
    assert v.paired(
        table, {"cond": 0, "m": 3}, {"cond": 1, "m": 3}, "agreement"
    ).mean == pytest.approx(0.15)


def test_threshold_and_equivalence_outcomes():
    iv = v.Interval(0.98, 0.975, 0.985, 5)
    assert v.at_least(iv, 0.975) == v.HOLDS and v.at_least(iv, 0.99) == v.FAILS
    assert v.at_least(iv, 0.98) == v.INCONCLUSIVE and v.at_most(iv, 0.99) == v.HOLDS
    assert v.within(v.Interval(0.0, -0.01, 0.01, 5), -0.015, 0.015) == v.HOLDS
    assert v.within(v.Interval(0.0, -0.03, 0.01, 5), -0.015, 0.015) == v.INCONCLUSIVE
    assert v.within(v.Interval(0.05, 0.03, 0.07, 5), -0.015, 0.015) == v.FAILS


def check(outcome, core=True):
    return v.Check("c", "Fig. 0", "p", "h", outcome, core)


def test_status_rules():
    f = lambda *checks: v.Finding("H0", "claim", list(checks)).status  # noqa: E731
    assert f(check(v.HOLDS), check(v.HOLDS)) == "reproduced"
    assert f(check(v.HOLDS), check(v.INCONCLUSIVE)) == "partly reproduced"
    assert f(check(v.INCONCLUSIVE), check(v.INCONCLUSIVE)) == "inconclusive"
    assert f(check(v.HOLDS), check(v.FAILS)) == "not reproduced"
    # context checks never count, whatever their outcome
    assert f(check(v.HOLDS), check(v.FAILS, core=False)) == "reproduced"
    assert f(check(v.INCONCLUSIVE), check(v.HOLDS, core=False)) == "inconclusive"
    with pytest.raises(ValueError, match="at least one core check"):
        f(check(v.HOLDS, core=False))
    finding = v.Finding(
        "H0", "claim", [check(v.HOLDS), v.Check("b rises", "Fig. 1", "p", "h", v.INCONCLUSIVE)]
    )
    assert finding.reason == "b rises: inconclusive"
    # "why it is not reproduced" only under that verdict
    assert finding.because == " What keeps it from being reproduced: b rises: inconclusive."
    failed = v.Finding("H0", "claim", [check(v.FAILS)])
    assert failed.because == " Why it is not reproduced: c: fails."
    # an undecided check is no reason for "not reproduced": it is listed apart
    mixed = v.Finding(
        "H0", "claim", [check(v.FAILS), v.Check("b rises", "Fig. 1", "p", "h", v.INCONCLUSIVE)]
    )
    assert mixed.because == (
        " Why it is not reproduced: c: fails. Undecided: b rises: inconclusive."
    )
    assert v.Finding("H0", "claim", [check(v.HOLDS)]).because == ""
    assert finding.text().splitlines() == [
        "H0: claim",
        "verdict: PARTLY REPRODUCED",
        "- c: holds",
        "    paper (Fig. 0): p",
        "    here: h",
        "- b rises: inconclusive",
        "    paper (Fig. 1): p",
        "    here: h",
    ]


def test_interval_text():
    assert v.Interval(0.0123, -0.002, 0.0266, 3).text() == "+1.2 pt [−0.2, +2.7]"
    assert v.Interval(0.01, -math.inf, math.inf, 1).text() == "+1.0 pt (1 trial)"
    # an end that would print as ±0.0 gets the digit that shows its side
    assert v.Interval(0.010, 0.0003, 0.0197, 5).text() == "+1.00 pt [+0.03, +1.97]"
    assert v.Interval(0.005, -0.0004, 0.0104, 5).text() == "+0.50 pt [−0.04, +1.04]"
    # a mean that rounds to zero prints without a sign, whichever side it lies on
    assert v.Interval(-0.00004, -0.0002, 0.0001, 3).text() == "0.00 pt [−0.02, +0.01]"
    assert v.Interval(0.0, -0.02, 0.02, 3).text() == "0.0 pt [−2.0, +2.0]"
    # ... while an end that would round to zero takes the digits that say where the interval stops
    assert v.Interval(0.0001, 0.00004, 0.0003, 3).text() == "+0.010 pt [+0.004, +0.030]"


def test_interval_here_is_a_checks_cell():
    iv = v.Interval(0.0123, -0.002, 0.0266, 3)
    assert iv.here("s1 − s0 ") == "s1 − s0 +1.2 pt [−0.2, +2.7], half-width 1.4 pt (3 trials)"
    # ECE differences print as fractions, at three digits and no unit
    assert (
        v.Interval(-0.012, -0.02, -0.004, 5).here(scale=1, digits=3, unit="")
        == "−0.012 [−0.020, −0.004], half-width 0.008 (5 trials)"
    )
    # a half-width takes the digits its interval needed, and one more where it would print as 0
    assert v.Interval(-0.00004, -0.0002, 0.00012, 3).here() == (
        "0.00 pt [−0.02, +0.01], half-width 0.02 pt (3 trials)"
    )
    assert v.Interval(0.1, 0.0996, 0.1004, 3).here() == (
        "+10.0 pt [+10.0, +10.0], half-width 0.04 pt (3 trials)"
    )


def test_late_change_and_its_sampling_error_by_hand():
    from kdrepro.plan import late_change

    curves = [
        {"step": s, "train_agreement": a} for s, a in ((25, 0.5), (50, 0.6), (75, 0.7), (100, 0.8))
    ]
    change, se = late_change(curves, batch_size=4)  # windows of 25 steps x 4 examples
    assert change == pytest.approx(0.1)
    assert se == pytest.approx(math.sqrt(0.8 * 0.2 / 100 + 0.7 * 0.3 / 100))


def test_a_move_within_sampling_noise_is_not_unconverged():
    def table(late_se):
        return pd.DataFrame(
            [
                {"role": "teacher", "train_accuracy": 0.99, "late_change": 0.0, "late_se": 0.001},
                {
                    "role": "student",
                    "train_accuracy": None,
                    "late_change": 0.01,
                    "late_se": late_se,
                },
            ]
        )

    assert v.convergence(table(0.006)) == ""  # 1 pt < 2 x 0.6 pt
    assert (
        v.convergence(table(0.001))
        == "1 of 1 students' train agreement moved by up to 1.0 pt over the last quarter"
    )
    assert (
        v.convergence(table(0.001).drop(columns="late_se")) != ""
    )  # without errors: the plain 0.5-pt rule


def test_a_nan_trial_is_an_error_and_missing_trials_are_counted():
    with pytest.raises(ValueError, match="1 of 3 trials are NaN"):
        v.interval([0.1, float("nan"), 0.2])
    table = two_conditions([0.5, float("nan"), 0.7], [0.6, 0.7, 0.8])
    with pytest.raises(ValueError, match="NaN"):
        v.paired(table, {"cond": 0}, {"cond": 1}, "agreement")
    assert v.Interval(0.01, -0.005, 0.025, 4).half == pytest.approx(0.015)


def test_teachers_are_judged_by_fit_and_students_not_by_their_slope():
    table = pd.DataFrame(
        [
            {"role": "teacher", "clean_train_accuracy": 0.995, "late_change": 0.05},
            {"role": "teacher", "clean_train_accuracy": 0.97, "late_change": 0.0},
            {"role": "student", "clean_train_accuracy": None, "late_change": 0.05},
        ]
    )
    assert v.convergence(table) == (
        "1 of 2 teachers do not fit their training set (eval-mode train accuracy "
        "97.0–97.0 %, below 99 %)"
    )
    assert (
        v.convergence(table.iloc[[0, 2]]) == ""
    )  # a student still moving is the length control's business
    missing = table.assign(clean_train_accuracy=[0.995, float("nan"), None])
    assert v.convergence(missing).startswith(
        "1 of 2 teachers"
    )  # a teacher without the measurement does not fit


def length_table(short, long):
    rows = [{"trial": t, "length": 1, "agreement": x} for t, x in enumerate(short)]
    return pd.DataFrame(
        rows + [{"trial": t, "length": 2, "agreement": x} for t, x in enumerate(long)]
    )


def test_the_length_control_withdraws_an_effect_no_larger_than_what_doubling_moved():
    moved = v.length_moves(
        length_table([0.70, 0.71, 0.72], [0.73, 0.74, 0.75]),
        {"length": 1},
        {"length": 2},
        ["agreement"],
    )["agreement"]
    assert moved.mean == pytest.approx(0.03) and moved.n == 3
    rise = v.Check("agreement rises", "Fig. 10", "rises", "h", v.HOLDS)
    kept = v.guarded(rise, 0.05, moved)
    assert kept.outcome == v.HOLDS
    assert kept.note == (
        "doubling the student steps moved it +3.0 pt [+3.0, +3.0], less than its distance from "
        "the threshold (5.0 pt)"
    )
    # an effect and a movement that round alike are shown with the digit that tells them apart
    close = v.guarded(rise, 0.0304, moved)
    assert close.outcome == v.HOLDS and close.note.endswith(
        "moved it +3.00 pt [+3.00, +3.00], less than its distance from the threshold (3.04 pt)"
    )
    assert kept.kept_by == pytest.approx(0.4) and kept.kept_text == (
        "its distance from the threshold (5.0 pt) exceeds what doubling moved it (+3.0 pt) by "
        "2.0 pt"
    )
    assert close.kept_by == pytest.approx(0.04 / 3.04)
    withdrawn = v.guarded(rise, 0.02, moved)
    assert withdrawn.kept_by is None and withdrawn.kept_text == ""
    assert (
        withdrawn.outcome == v.INCONCLUSIVE
        and "at least its distance from the threshold (2.0 pt)" in withdrawn.note
    )
    assert "held only at this length" in withdrawn.note
    # the matrix says why it does not decide; a kept check has no reason to give
    assert withdrawn.result == "inconclusive — the length control withdrew it" and kept.why == ""
    assert v.Finding("H0", "claim", [withdrawn]).reason == (
        "agreement rises: inconclusive — the length control withdrew it"
    )
    with pytest.raises(ValueError, match="only an inconclusive check says why"):
        v.Check("c", "s", "p", "h", v.HOLDS, why="untestable here")
    failed = v.guarded(v.Check("student ≥ teacher", "§4.1", "p", "h", v.FAILS), -0.025, moved)
    assert (
        failed.outcome == v.INCONCLUSIVE
    )  # a failure is withdrawn too: the rule leans to neither side
    assert v.guarded(v.Check("c", "s", "p", "h", v.FAILS), -0.04, moved).outcome == v.FAILS
    # a fall: the distance has no sign, the movement the book's minus
    fell = replace(moved, mean=-moved.mean, lo=-moved.hi, hi=-moved.lo)
    down = v.guarded(v.Check("falls", "s", "p", "h", v.HOLDS), -0.05, fell)
    assert down.kept_text == (
        "its distance from the threshold (5.0 pt) exceeds what doubling moved it (−3.0 pt) by "
        "2.0 pt"
    )
    assert (
        v.guarded(rise, 0.0, None) is rise
    )  # no length control at this profile: the check as it is
    assert (
        v.guarded(v.Check("c", "s", "p", "h", v.HOLDS, core=False), 0.0, moved).outcome == v.HOLDS
    )
    text = v.Finding("H0", "claim", [withdrawn]).text().splitlines()
    assert text[-1].startswith("    length control: doubling the student steps moved it +3.0 pt")


def test_a_non_negative_quantity_is_judged_by_counting_trials():
    assert v.every_trial([0.2, 0.07, 0.4], above=0.05) == v.HOLDS
    assert (
        v.every_trial([0.0, 0.01, 0.05], above=0.05) == v.FAILS
    )  # at the threshold is not above it
    assert v.every_trial([0.0, 0.3, 0.4], above=0.05) == v.INCONCLUSIVE
    with pytest.raises(ValueError, match="1 of 3 trials are NaN"):
        v.every_trial([0.2, float("nan"), 0.4], above=0.05)


def test_interval_short_names_the_trials():
    iv = v.Interval(0.072, 0.055, 0.089, 5)
    assert iv.short() == "+7.2 pt [+5.5, +8.9], 5 trials"
    assert (
        v.Interval(0.9804, 0.9756, 0.9852, 5).short(unit=" %", signed=False, at="at 60,000 images")
        == "98.0 % [97.6, 98.5] at 60,000 images, 5 trials"
    )
    assert v.Interval(0.01, -math.inf, math.inf, 1).short() == "+1.0 pt (1 trial)"


def test_the_headline_is_the_first_core_check_unless_one_is_marked():
    first = v.Check("a", "Fig. 1", "p", "h", v.HOLDS, value="+1 pt")
    context = v.Check("c", "Fig. 1", "p", "h", v.HOLDS, core=False, value="+2 pt")
    marked = v.Check("b", "Fig. 2", "p", "h", v.FAILS, value="−1 pt", headline=True)
    assert v.Finding("H0", "claim", [context, first]).headline is first
    assert v.Finding("H0", "claim", [first, marked]).headline is marked
    with pytest.raises(ValueError, match="one headline, a core check"):
        v.Finding("H0", "claim", [marked, v.Check(**{**marked.__dict__, "what": "b2"})]).headline
    with pytest.raises(ValueError, match="one headline, a core check"):
        v.Finding(
            "H0", "claim", [first, v.Check(**{**context.__dict__, "headline": True})]
        ).headline
    with pytest.raises(ValueError, match="has no short value"):
        v.Finding("H0", "claim", [check(v.HOLDS)]).headline


def test_the_length_controls_rule_reads_as_its_multiple_and_says_when_there_is_none():
    assert [v.times(k) for k in (2, 3, 5)] == ["twice", "3×", "5×"]
    assert v.guard_rule(2, "agreement", "chapter 3") == (
        "Every core check is withdrawn to inconclusive when its effect is no larger than what "
        "doubling the student steps moved agreement in chapter 3."
    )
    assert v.guard_rule(3, "the same metric", "chapter 3").endswith(
        "what 3× the student steps moved the same metric in chapter 3."
    )
    for none in (None, 0):
        assert v.guard_rule(none, "agreement", "chapter 3") == (
            "This profile runs no length control, so no check is withdrawn by one."
        )


def test_trials_for_a_margin():
    # t(15) = 2.131: 2.131 * 2.8 / 4 = 1.49 <= 1.5, while t(14) = 2.145 gives 1.55 at 15 trials
    assert v.trials_for(0.028, 0.015) == 16
    assert v.trials_for(1.0, 12.706 / math.sqrt(2)) == 2  # t(1) = 12.706: two trials suffice
    assert v.trials_for(1.0, 12.7 / math.sqrt(2)) == 3
    for sd, half in ((0.0, 0.015), (0.028, 0.0), (float("nan"), 0.015)):
        with pytest.raises(ValueError, match="must be positive"):
            v.trials_for(sd, half)
