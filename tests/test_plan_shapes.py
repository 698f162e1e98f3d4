"""Every chapter's findings on synthetic runs shaped like each of its plans, at every profile but
smoke (which CI runs for real): code that breaks on a profile's table shape (an arm one optimizer
runs and the other does not, the sizes of a curve, a cut condition) fails here, before the runs
exist. The numbers are noise around a stored run's; only that every finding gets a verdict is
asserted, not which."""

import copy

import numpy as np
import pytest

from kdrepro import chapters, runs
from kdrepro.verdict import FAILS, HOLDS, INCONCLUSIVE

STATUSES = {"reproduced", "partly reproduced", "not reproduced", INCONCLUSIVE}
# what some chapters' students record besides a plain student's metrics (chapter 7's loss planes,
# CKA and train KL), drawn around plausible levels
EXTRA = {"loss_barrier": 0.2, "cka_stage1": 0.9, "cka_stage2": 0.9, "cka_stage3": 0.9}


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    """A stored teacher and student of chapter 3's budget runs (committed in results/)."""
    out = {}
    for cfg in chapters.plan("self_vs_ensemble", "budget").configs:
        if cfg.kind not in out and (res := runs.stored(cfg)) is not None:
            out[cfg.kind] = res
    assert set(out) == {"teacher", "student"}, "results/ lacks chapter 3's budget runs"
    return out


def fake(cfg, templates: dict, rng: np.random.Generator) -> dict:
    result = copy.deepcopy(templates[cfg.kind])
    result["run_id"], result["steps"] = cfg.run_id, cfg.steps
    final = result["final"]
    if cfg.kind == "student":
        final.update({k: v for k, v in EXTRA.items() if k not in final})
        final.setdefault("train_kl", final["kl"])
        if getattr(cfg, "surface", 0):  # Fig. 6c's path (teacher's loss, a ridge, the student's)
            # and the plane's points: the teacher at 0, the student ending farther than it started
            result["surface"] = {
                "path": [0.5, 0.9 + rng.normal(0, 0.1), 0.7],
                "points": {"teacher": [0.0, 0.0], "final": [30.0, 0.0], "init": [10.0, 18.0]},
            }
    for key, value in final.items():
        if isinstance(value, float):
            moved = value * (1 + rng.normal(0, 0.02))
            final[key] = min(max(moved, 0.0), 1.0) if 0.0 <= value <= 1.0 else moved
    return result


def _has(name: str, profile: str) -> bool:
    """Whether chapter `name` has a `profile` recipe (chapter 6, which reads other chapters' runs,
    has whatever they have)."""
    recipe = getattr(chapters.get(name), "RECIPE", None)
    return profile in recipe if recipe is not None else True


@pytest.mark.parametrize(
    "name, profile",
    [(n, p) for p in ("budget", "gpu", "paper") for n in chapters.CHAPTERS if _has(n, p)],
)
def test_every_finding_is_judged_on_a_table_shaped_like_the_plan(name, profile, templates):
    rng = np.random.default_rng(0)
    chapter = chapters.get(name)
    for plan in chapters.plans(name, profile):
        results = [fake(cfg, templates, rng) for cfg in plan.configs]
        findings = chapter.findings(plan.table(results))
        assert [f.key for f in findings] and all(f.status in STATUSES for f in findings)
        assert all(c.outcome in (HOLDS, FAILS, INCONCLUSIVE) for f in findings for c in f.checks)
