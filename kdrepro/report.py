"""What the chapters and the summary page share: mean ± std tables, figure bands, and the summary
page.

The verdict on each finding (H1-H15) comes from its chapter's checks (`chapters.<name>.findings`,
decided by the rules in `verdict`), computed from stored results: a verdict is never typed by hand.
"""

import pandas as pd

from . import chapters, compute, runs, store
from .errors import KdreproError


def mean_std(table: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    """Mean, sample std (ddof=1; 0 for one seed) and count over trials, one row per group."""
    g = table.groupby(by)[cols]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).fillna(0.0).add_suffix("_std"))
    return out.join(g.size().rename("n")).reset_index()


def std(values) -> float:
    """Sample standard deviation over trials (ddof=1), 0 for a single trial."""
    return float(pd.Series(values).std(ddof=1)) if len(values) > 1 else 0.0


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    """'87.3 ± 0.4' (scale 100 turns fractions into percent)."""
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def band(ax, x, mean, std, label: str, **kw) -> None:
    """A mean line with a ±1 std band, the paper's way of showing trials."""
    (line,) = ax.plot(x, mean, marker="o", label=label, **kw)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)


def curves(
    plan, results: list[dict], keys: tuple[str, ...] = ("train_agreement", "agreement")
) -> pd.DataFrame:
    """The students' evaluation curves, one row per (run, evaluation): labels, progress (fraction of
    steps), keys."""
    return pd.DataFrame(
        [
            {**labels, "progress": row["step"] / res["steps"], **{k: row[k] for k in keys}}
            for (labels, _), res in zip(plan.rows, results)
            if labels["role"] == "student"
            for row in res["curves"]
        ]
    )


def compute_line(table: pd.DataFrame, results: list[dict]) -> str:
    """Runs, training time, hardware, stack and commits behind a chapter, and a warning for anything
    that would make its numbers less than reproducible (uncommitted code, another library stack)."""
    fp = results[0]["fingerprint"]
    line = (
        f"{len(table)} runs, {table.wall_seconds.sum() / 60:.1f} min of training on "
        f"{', '.join(table.device_name.unique())} (torch {fp['torch']}, numerics "
        f"v{fp['numerics']}, commits {', '.join(sorted(table.git_commit.str[:8].unique()))})."
    )
    if table.git_dirty.any():
        dirty = int(table.git_dirty.sum())
        line += f" Warning: {dirty} runs were made with uncommitted changes in kdrepro/."
    note = runs.stack_note(results)
    return f"{line} {note}" if note else line


def paper_cost(name: str) -> str:
    """What chapter `name` would cost at the paper's scale (its `paper` profile), estimated from the
    committed benchmarks (`kdrepro.compute`) on the CPU and on a GPU."""
    configs = list(
        dict.fromkeys(cfg for plan in chapters.get(name).plans("paper") for cfg in plan.configs)
    )
    where = []
    for device in ("cpu", "cuda"):
        got = compute.estimate(configs, device)
        if got:
            where.append(
                f"about {compute.duration(got[0])} on the benchmarked {device.upper()} "
                f"({'; '.join(got[1])} in results/bench)"
            )
        elif device == "cuda" and all(c.model.startswith("preresnet") for c in configs):
            where.append(
                "no CUDA benchmark is committed yet; at the single-network H100 rate the `gpu` "
                "profiles are sized by (an assumption), about "
                f"{compute.duration(compute.h100_seconds(configs))}"
            )
        else:
            where.append(f"no {device.upper()} benchmark is committed yet, so no estimate there")
    return (
        f"At the paper's scale (the `paper` profile) this chapter is {len(configs)} runs: "
        f"{where[0]}; {where[1]}. (An extrapolation: FLOPs over the benchmarked network's rate, "
        "checked against our stored runs at budget scale only; one run at a time, packing not "
        "counted.)"
    )


def gpu_cost(name: str) -> str:
    """How long chapter `name`'s `gpu` profile should take on one GPU: the runs it adds to the
    chapters before it in the book (runs shared by config train once), from a committed CUDA
    benchmark, else at the rate it was sized by."""
    if "gpu" not in chapters.profiles(name):
        return "This chapter has no `gpu` profile."
    book = list(chapters.CHAPTERS)  # in the book's order, published or being rerun
    earlier = book[: book.index(name)]
    seen = {
        c.run_id
        for n in earlier
        if "gpu" in chapters.profiles(n)
        for p in chapters.get(n).plans("gpu")
        for c in p.configs
    }
    configs = list(dict.fromkeys(c for p in chapters.get(name).plans("gpu") for c in p.configs))
    new = [c for c in configs if c.run_id not in seen]
    if not new:
        return (
            f"On one GPU (the `gpu` profile) this chapter's {len(configs)} runs are all trained by "
            "earlier chapters."
        )
    got = compute.estimate(new, "cuda")
    when = (
        f"about {compute.duration(got[0])} on the benchmarked GPU ({'; '.join(got[1])} in "
        "results/bench)"
        if got
        else f"about {compute.duration(compute.h100_seconds(new))} at the single-network H100 rate "
        "it was sized by (an assumption until a CUDA benchmark is committed)"
    )
    return (
        f"On one GPU (the `gpu` profile) this chapter is {len(configs)} runs, "
        f"{len(configs) - len(new)} of them trained by earlier chapters: {when}, one run at a time "
        "(packing runs, --pack, should be faster)."
    )


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


def init_effect(profile: str = "budget") -> str:
    """What chapter 7's Table 1 measured at `profile` of a student started at its teacher's initial
    weights (as the stored students of chapters 3 and 4 were), for their setup tables; a sentence
    saying so when its runs are not in the store (a smoke sweep reaches chapter 7 last)."""
    try:
        _, _, table = tables("optimization", profile)[0]
    except store.StoreMiss:
        return (
            "Chapter 7's Table 1 measures what that does (its runs are not in this result store "
            "yet)"
        )
    h9 = chapters.get("optimization").table1(table)
    return (
        "Chapter 7's Table 1 measures what that does at our scale (other networks: LayerNorm "
        f"PreResNet-8s): test agreement {h9.checks[0].here}, test KL {h9.checks[1].here}, so H9 is "
        f"{h9.status} there"
    )


NOT_RUN = {
    "H12": "student capacity (Fig. 12): chapter not written yet",
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
    for plan in chapters.get(name).plans(profile):
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
    configs = {c.run_id: c for plan in chapters.get(name).plans(profile) for c in plan.configs}
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
