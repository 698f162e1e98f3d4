"""The summary page (`book/intro.md`'s generated tables) and what it reads: the stored tables of a
chapter's plans, every finding they judge, and the findings not run here.

The verdict on each finding (H1-H15) comes from its chapter's checks (`chapters.<name>.findings`,
decided by the rules in `verdict`), computed from stored results: a verdict is never typed by hand.
"""

import pandas as pd

from . import chapters, runs
from .errors import KdreproError


def at_scale(name: str, profile: str = "gpu") -> str:
    """Chapter `name`'s verdicts at another scale, beside the one it shows: the findings of that
    profile's stored runs (verdicts stand on the same checks), or how many of its runs are stored
    while any is missing."""
    if profile not in chapters.profiles(name):
        return f"This chapter has no `{profile}` profile."
    done, total = progress(name, profile)
    if done < total:
        return f"The `{profile}` profile has not been run: {done} of its {total} runs are stored."
    (_, _, table), *_ = tables(name, profile)
    scope = f"the `{profile}` recipe of kdrepro/chapters/{name}.py"
    return "\n\n".join(f.text() for f in chapters.get(name).findings(table, scope))


NOT_RUN = {
    "H13": (
        "ImageNet and IMDB (Table 2, App. C.3-C.4): cannot run here. The paper reports ResNet-50 "
        "on ImageNet at 85.5 / 87.8 / 88.4 % top-1 agreement (m = 1 / 3 / 5; student accuracy "
        "75.3-75.6 %) and a biLSTM on IMDB at 86.5 / 89.8 / 90.8 %: fidelity stays well below "
        "100 % outside CIFAR too. Neither dataset is available offline, and kdrepro has no "
        "ImageNet-scale loader or text model, so no `paper` command runs them"
    ),
}


def finding_order(key: str) -> tuple[bool, int]:
    """The paper's findings H1-H15 in order, then the follow-up's (F1, F2)."""
    return key[0] != "H", int(key[1:])


def tables(name: str, profile: str = "budget") -> list[tuple]:
    """The stored (plan, results, table) of every plan chapter `name` shows, its main plan first
    (StoreMiss if a run is missing)."""
    out = []
    for plan in chapters.plans(name, profile):
        results = runs.run_all(plan.configs, store_only=True, progress=False)
        out.append((plan, results, plan.table(results)))
    return out


def all_findings(profile: str = "budget") -> tuple[list, pd.DataFrame]:
    """Every finding the stored runs can judge, and the compute they took (per chapter, all its
    plans)."""
    findings, compute = [], []
    for name in chapters.PUBLISHED:
        chapter = chapters.get(name)
        shown = tables(name, profile)
        table = pd.concat([t for _, _, t in shown]).drop_duplicates("run_id")
        if table.git_dirty.any():
            raise KdreproError(
                f"{name}: {int(table.git_dirty.sum())} stored runs were made with uncommitted "
                "changes in kdrepro/; rerun them from a clean tree before publishing"
            )
        findings += chapter.findings(shown[0][2])
        compute.append(
            {
                "experiment": name,
                "runs": len(table),
                "cpu_hours": table.wall_seconds.sum() / 3600,
                "device": ", ".join(sorted(table.device_name.unique())),
            }
        )
    return findings, pd.DataFrame(compute)


def progress(name: str, profile: str = "budget") -> tuple[int, int]:
    """(stored, planned) runs of every plan chapter `name` shows."""
    configs = {c.run_id: c for plan in chapters.plans(name, profile) for c in plan.configs}
    return sum(runs.stored(c) is not None for c in configs.values()), len(configs)


def summary_markdown(profile: str = "budget") -> str:
    """The summary page's verdict and compute tables, generated from results/."""
    findings, compute = all_findings(profile)
    judged = {f.key: f for f in findings}
    pending = {}
    for name in set(chapters.CHAPTERS) - set(chapters.PUBLISHED):
        done, total = progress(name, profile)
        for key in chapters.get(name).FINDINGS:
            pending[key] = (
                f"chapter `{name}` not yet published: {done} of {total} `{profile}` runs stored"
            )
    lines = [
        "| # | claim | verdict | evidence (core checks; 95 % intervals over trials) |",
        "|---|---|---|---|",
    ]
    keys = {key for chapter in chapters.CHAPTERS.values() for key in chapter.FINDINGS} | set(
        NOT_RUN
    )
    for key in sorted(keys, key=finding_order):
        if key in judged:
            f = judged[key]
            evidence = "; ".join(
                f"{c.what} — paper: {c.paper} ({c.source}), here: {c.here} — **{c.outcome}**"
                for c in f.checks
                if c.core
            )
            why = f"; runs not converged at this scale: {f.unconverged}" if f.unconverged else ""
            lines.append(f"| {key} | {f.claim} | **{f.status}** ({f.scope}{why}) | {evidence} |")
        elif key in pending:
            lines.append(f"| {key} | — | runs in progress | {pending[key]} |")
        else:
            status = "cannot run here" if "cannot run here" in NOT_RUN[key] else "not yet run"
            lines.append(f"| {key} | — | {status} | {NOT_RUN[key]} |")
    lines += ["", "| chapter | runs | CPU hours | hardware |", "|---|---|---|---|"]
    lines += [
        f"| {r.experiment} | {r.runs} | {r.cpu_hours:.2f} | {r.device} |"
        for r in compute.itertuples()
    ]
    lines.append(f"| **total** | {compute.runs.sum()} | {compute.cpu_hours.sum():.2f} | |")
    return "\n".join(lines) + "\n"
