"""The capacity chapter (Fig. 12, H12): deeper students differ from chapter 3's in depth alone, and
the rule decides both ways on synthetic tables."""

from dataclasses import replace

import pandas as pd
import pytest

from kdrepro import verdict as v
from kdrepro.chapters import capacity as cap
from kdrepro.chapters import self_vs_ensemble as sve
from kdrepro.errors import ConfigError


@pytest.mark.parametrize("profile", ["smoke", "budget", "gpu", "paper"])
def test_a_deeper_student_differs_from_its_chapter_3_twin_in_depth_alone(profile):
    p = cap.plan(profile)
    chapter3 = {c.run_id for c in sve.plan(profile).configs}
    students = [(labels, c) for labels, c in p.rows if labels["role"] == "student"]
    own = [(labels, c) for labels, c in students if labels["own"] == 1]
    deeper = [(labels, c) for labels, c in students if labels["own"] == 0]
    assert {c.run_id for _, c in own} <= chapter3 and not {c.run_id for _, c in deeper} & chapter3
    twins = {(labels["m"], labels["trial"]): c for labels, c in own if labels["length"] == 1}
    models = cap.RECIPE[profile]["students"]
    assert len(deeper) == len(twins) * len(models)
    for labels, c in deeper:
        assert c == replace(twins[labels["m"], labels["trial"]], model=labels["student"])
        assert labels["student"] in models and labels["length"] == 1
    assert {m for m, _ in twins} == set(cap.RECIPE[profile]["ms"])
    with pytest.raises(ConfigError, match="profile="):
        cap.plan("huge")


def table(gains: list[float], acc: float = 0.01, long: list[float] | None = None) -> pd.DataFrame:
    """Teachers that fit; per trial a preresnet8 student and a preresnet20 student whose agreement
    is higher by the trial's gain; a length control at 2x the steps moved by `long`."""
    rows = [{"role": "teacher", "clean_train_accuracy": 1.0} for _ in gains]
    for i, g in enumerate(gains):
        for model, own, up in (("preresnet8", 1, 0.0), ("preresnet20", 0, 1.0)):
            rows.append(
                {
                    "role": "student",
                    "m": 1,
                    "trial": i,
                    "length": 1,
                    "student": model,
                    "own": own,
                    "agreement": 0.70 + 0.01 * i + up * g,
                    "accuracy": 0.60 + up * (acc + 0.001 * i),
                }
            )
        if long is not None:
            rows.append(
                {
                    **rows[-2],
                    "length": 2,
                    "agreement": rows[-2]["agreement"] + long[i],
                    "accuracy": rows[-2]["accuracy"],
                }
            )
    return pd.DataFrame(rows)


def core(t: pd.DataFrame) -> v.Check:
    (f,) = cap.findings(t)
    (c,) = [c for c in f.checks if c.core]
    return c


def test_h12_holds_for_a_small_gain_and_fails_for_a_large_one():
    assert core(table([0.010, 0.012, 0.008, 0.011, 0.009])).outcome == v.HOLDS
    assert core(table([0.08, 0.09, 0.07, 0.085, 0.075])).outcome == v.FAILS
    assert core(table([0.0, 0.06, -0.01, 0.07, 0.03])).outcome == v.INCONCLUSIVE
    (f,) = cap.findings(table([0.010, 0.012, 0.008, 0.011, 0.009]))
    # readers see the networks' names, never their ids
    assert f.status == "reproduced" and "PreResNet-20 − PreResNet-8" in f.checks[0].here
    assert not any("preresnet" in c.what + c.here + c.value + c.note for c in f.checks)
    acc, level = [c for c in f.checks if not c.core]
    assert acc.outcome == v.HOLDS  # context: the deeper student is more accurate
    # context: the deeper student's agreement (71-75 %) stays below 99 %
    assert level.outcome == v.HOLDS and level.here == "73.0 % [71.1, 74.9], 5 trials"
    assert level.what.endswith("(test agreement below 99 %)")


def test_a_gain_no_larger_than_what_longer_training_moves_is_withdrawn():
    far = [0.08, 0.09, 0.07, 0.085, 0.075]
    assert core(table(far, long=[0.01, 0.01, 0.012, 0.009, 0.011])).outcome == v.FAILS
    c = core(table(far, long=[0.06, 0.07, 0.065, 0.06, 0.07]))
    assert (
        c.outcome == v.INCONCLUSIVE and "doubling the steps of m = 1 PreResNet-8 students" in c.note
    )
