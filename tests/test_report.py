"""Verdicts are computed, not typed: check the aggregation and the rules on hand-made tables."""

import math

import pandas as pd
import pytest

from kdrepro import report


def test_mean_std_uses_sample_std_and_zero_for_one_trial():
    table = pd.DataFrame({"g": [1, 1, 1, 2], "v": [0.1, 0.2, 0.3, 0.5]})
    out = report.mean_std(table, ["g"], ["v"])
    assert out.v_mean.tolist() == pytest.approx([0.2, 0.5])
    assert out.v_std.tolist() == pytest.approx([0.1, 0.0])  # sqrt(((0.1)^2 + 0 + (0.1)^2) / 2) = 0.1
    assert out.n.tolist() == [3, 1]
    assert report.std([0.5]) == 0.0 and math.isclose(report.std([1.0, 3.0]), math.sqrt(2))
    assert report.pm(0.87345, 0.0042) == "87.3 ± 0.4"


def test_status_from_checks():
    f = report.Finding("H0", "claim", [report.Check("a", "", "", True), report.Check("b", "", "", True)])
    assert f.status == "reproduced"
    f.checks.append(report.Check("c", "", "", False))
    assert f.status == "partly reproduced"
    assert report.Finding("H0", "claim", [report.Check("a", "", "", False)]).status == "not reproduced"


def lenet_table(agreements, student_acc, teacher_acc):
    rows = [{"role": "teacher", "trial": t, "accuracy": a} for t, a in enumerate(teacher_acc)]
    for size, agr in agreements.items():
        rows += [{"role": "student", "trial": t, "distill_size": size, "agreement": a, "accuracy": student_acc}
                 for t, a in enumerate(agr)]
    return pd.DataFrame(rows)


def test_h1_rules():
    good = lenet_table({200: [0.95, 0.96], 60000: [0.992, 0.994]}, 0.86, [0.85, 0.87])
    (h1,) = report.lenet_findings(good, "test")
    assert [c.passed for c in h1.checks] == [True, True, True] and h1.status == "reproduced"
    short = lenet_table({200: [0.95, 0.96], 60000: [0.985, 0.987]}, 0.86, [0.85, 0.87])
    (h1,) = report.lenet_findings(short, "test")
    assert [c.passed for c in h1.checks] == [False, True, True] and h1.status == "partly reproduced"
    flat = lenet_table({200: [0.97, 0.97], 60000: [0.96, 0.96]}, 0.95, [0.85, 0.85])
    (h1,) = report.lenet_findings(flat, "test")
    assert h1.status == "not reproduced"


def test_ensemble_rules():
    rows = []
    # m, extra -> (agreement, student acc, teacher acc, control agreement), two trials alike
    cells = {(1, 0): (0.80, 0.66, 0.65, 0.75), (1, 10): (0.83, 0.65, 0.65, 0.76),
             (3, 0): (0.85, 0.68, 0.70, 0.80), (3, 10): (0.87, 0.69, 0.70, 0.81),
             (5, 0): (0.86, 0.69, 0.71, 0.81)}
    for (m, extra), (agr, acc, tacc, ctrl) in cells.items():
        rows += [{"role": "student", "trial": t, "m": m, "extra": extra, "agreement": agr, "accuracy": acc,
                  "teacher_accuracy": tacc, "control_agreement": ctrl} for t in range(2)]
    h2, h3, h10 = report.ensemble_findings(pd.DataFrame(rows), "test")
    assert h2.status == "reproduced" and h3.status == "reproduced" and h10.status == "reproduced"
    rows = [r | {"agreement": 0.99} if (r["m"], r["extra"]) == (5, 0) else r for r in rows]
    rows = [r | {"accuracy": 0.60} if (r["m"], r["extra"]) == (1, 0) else r for r in rows]
    h2, _, h10 = report.ensemble_findings(pd.DataFrame(rows), "test")
    assert [c.passed for c in h2.checks] == [True, False, True, False]
    assert h10.checks[0].passed  # 0.80 < 0.85 < 0.99 is still increasing
