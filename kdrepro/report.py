"""The summary page (`book/intro.md`'s generated parts: the matrix that opens it, the detail below
its rules) and what it reads: the stored tables of a chapter's plans, every finding they judge, and
the findings not run here.

The verdict on each finding (H1-H15) comes from its chapter's checks (`chapters.<name>.findings`,
decided by the rules in `verdict`), computed from stored results: a verdict is never typed by hand.
"""

from dataclasses import dataclass

import pandas as pd

from . import chapters, runs
from .errors import KdreproError
from .verdict import HOLDS, Check, Finding


def at_scale(name: str, profile: str = "gpu") -> str:
    """Chapter `name`'s verdicts at another scale, beside the one it shows: the findings of that
    profile's stored runs (verdicts stand on the same checks), or how many of its runs are stored
    while any is missing."""
    if profile not in chapters.profiles(name):
        return f"This chapter has no {profile} profile."
    done, total = progress(name, profile)
    if done < total:
        return f"The {profile} profile has not been run: {done} of its {total} runs are stored."
    (_, _, table), *_ = tables(name, profile)
    scope = f"the {profile} recipe of kdrepro/chapters/{name}.py"
    return "\n\n".join(f.text() for f in chapters.get(name).findings(table, scope))


@dataclass(frozen=True)
class NotRun:
    """A finding no chapter judges: a few words and the paper's number (the matrix), why it does
    not run here in one short line (the matrix), and in full (the detail)."""

    title: str
    paper: str
    why: str
    detail: str


NOT_RUN = {
    "H13": NotRun(
        "Fidelity stays low beyond CIFAR (ImageNet, IMDB)",
        "85.5 / 87.8 / 88.4 % agreement at m = 1 / 3 / 5, ImageNet (Table 2)",
        "cannot run here (no ImageNet or IMDB offline)",
        "ImageNet and IMDB (Table 2, App. C.3-C.4) cannot run here. The paper reports ResNet-50 "
        "on ImageNet at 85.5 / 87.8 / 88.4 % top-1 agreement (m = 1 / 3 / 5; student accuracy "
        "75.3-75.6 %) and a biLSTM on IMDB at 86.5 / 89.8 / 90.8 %: fidelity stays well below "
        "100 % outside CIFAR too. Neither dataset is available offline. Where the IMDB archive "
        "can be downloaded (or sits in the data folder as aclImdb_v1.tar.gz), `python -m kdrepro "
        "run self_vs_ensemble --profile paper --dataset imdb` trains Table 2's IMDB rows at the "
        "paper's recipe (15 biLSTM teachers, students of m = 1, 3 and 5 over 3 trials each; SGD "
        "with Nesterov momentum and a cosine schedule, the official code's, since the paper "
        "states no optimizer) and prints their table, one network at a time (packs take images "
        "only). Where ImageNet-1k sits in the data folder (imagenet/train and imagenet/val, one "
        "folder per class), `python -m kdrepro run self_vs_ensemble --profile paper --dataset "
        "imagenet --device cuda` trains its rows at App. A.3's recipe (ResNet-50, 90 epochs at "
        "batch 1024, a 5-epoch warm-up to lr 0.1, then a cosine; students without weight decay; "
        "random-resized crops and flips, which the paper does not state, drawn from stored 224 × "
        "224 centre crops rather than the whole image): 15 teachers and 9 students of 90 epochs "
        "on 1.28M images each, a GPU cluster's work. Neither has run here: the numbers are the "
        "paper's.",
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


def runs_of(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The runs of a chapter's plan tables, each once: plans share runs (teachers, a condition two
    plans compare), and a plan lists a teacher once per student that reads it, so runs are told
    apart by run id."""
    return pd.concat(tables).drop_duplicates("run_id")


def published_tables(profile: str = "budget") -> dict[str, list[tuple]]:
    """`tables` of every published chapter, by name."""
    return {name: tables(name, profile) for name in chapters.PUBLISHED}


def all_findings(
    profile: str = "budget", loaded: dict[str, list[tuple]] | None = None
) -> tuple[list[Finding], pd.DataFrame]:
    """Every finding the stored runs can judge, and the compute they took (per chapter, each run
    of all its plans once); from `loaded` (`published_tables`) where given."""
    findings, compute = [], []
    for name, shown in (loaded or published_tables(profile)).items():
        chapter = chapters.get(name)
        table = runs_of([t for _, _, t in shown])
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
                "wall_hours": table.wall_seconds.sum() / 3600,
                "cpu_hours": table.cpu_seconds.sum() / 3600,  # NaN (old records) counts 0
                "cpu_runs": int(table.cpu_seconds.notna().sum()),
                "device": ", ".join(sorted(table.device_name.unique())),
            }
        )
    return findings, pd.DataFrame(compute)


def progress(name: str, profile: str = "budget") -> tuple[int, int]:
    """(stored, planned) runs of every plan chapter `name` shows."""
    configs = {c.run_id: c for plan in chapters.plans(name, profile) for c in plan.configs}
    return sum(runs.stored(c) is not None for c in configs.values()), len(configs)


def pending(profile: str = "budget") -> dict[str, str]:
    """The findings of chapters not yet published, each with its chapter's progress in a few
    words (a chapter without a recipe of its own counts the runs it reads)."""
    out = {}
    for name in chapters.CHAPTERS:
        if name not in chapters.PUBLISHED:
            done, total = progress(name, profile)
            which = (
                f"its {total} runs"
                if hasattr(chapters.get(name), "RECIPE")
                else f"the {total} runs it reads from other chapters"
            )
            for key in chapters.get(name).FINDINGS:
                out[key] = progress_words(done, total, which)
    return out


def progress_words(done: int, total: int, which: str) -> str:
    """An unpublished chapter's progress in the summary's matrix: `done` of `total` runs stored
    (`which` names them); a chapter whose runs are all stored waits for the chapters before it,
    since the book publishes its chapters in order."""
    if done < total:
        return f"chapter in progress: {done} of {which} stored"
    return f"all {which.removeprefix('its ')} stored; published after the chapters before it"


def _chapter_of(key: str) -> str:
    """The matrix's chapter cell: the number the prose cites, a link once the chapter is in the
    book."""
    name = next((n for n, c in chapters.CHAPTERS.items() if key in c.FINDINGS), None)
    if name is None:
        return "—"
    number = chapters.NUMBER[name]
    return f"{{doc}}`{number} <{name}>`" if name in chapters.PUBLISHED else str(number)


def _cell(text: str) -> str:
    """`text` in a Markdown table cell: a bar would end the cell (1 − |a − b|)."""
    return text.replace("|", "\\|")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return [
        "| " + " | ".join(map(_cell, header)) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(_cell, row)) + " |" for row in rows),
    ]


def markdown(table: pd.DataFrame) -> str:
    """A chapter's table as a rendered Markdown table (columns as headers, no index; a missing
    value prints as "—"), for `IPython.display.Markdown`: the book shows tables, not printed
    dataframes."""
    rows = [tuple("—" if pd.isna(x) else str(x) for x in row) for row in table.itertuples(False)]
    return "\n".join(_table(tuple(map(str, table.columns)), rows)) + "\n"


def matrix(findings: list[Finding], waiting: dict[str, str]) -> str:
    """The summary page's first screen: one line per finding, H1-H15 then F1, F2. A judged finding
    shows its headline check (`Finding.headline`): the paper's number, ours with its 95 % interval,
    n and outcome, and the verdict with how its core checks came out (`Finding.tally`); a finding
    not judged here, the paper's number (its chapter's `HEADLINES`, which its budget headline
    check cites too, or `NOT_RUN`) and why (`waiting`: its chapter's progress, from `pending`)."""
    judged = {f.key: f for f in findings}
    titles = {key: t for c in chapters.CHAPTERS.values() for key, t in c.FINDINGS.items()}
    headlines = {key: h for c in chapters.CHAPTERS.values() for key, h in c.HEADLINES.items()}
    titles |= {key: n.title for key, n in NOT_RUN.items()}
    rows = []
    for key in sorted(titles, key=finding_order):
        if key in NOT_RUN:
            rows.append((key, titles[key], "—", NOT_RUN[key].paper, NOT_RUN[key].why, "—"))
            continue
        if key in judged:
            # the check itself: at a profile without the budget headline's condition (H6 without
            # extra data at gpu) another core check heads the finding, with its own citation
            f, h = judged[key], judged[key].headline
            # with the tally: a headline that holds can sit beside a verdict another check decided
            verdict = (
                f"**{f.status}** "
                + ("(runs not converged)" if f.unconverged else f"({f.tally})")
                + (" — see its caveat below" if f.caveat else "")
            )
            paper, here = f"{h.paper} ({h.source})", f"{h.value} ({h.result})"
        else:  # its chapter is in progress, or its stored runs do not reach it
            source, paper = headlines[key]
            paper, here = f"{paper} ({source})", waiting.get(key, "not judged at this scale")
            verdict = "—"
        rows.append((key, titles[key], _chapter_of(key), paper, here, verdict))
    waits = [k for k in titles if k not in judged and k not in NOT_RUN]
    tally = (
        f"Judged here so far: {len(judged)} of {len(titles)} findings"
        + (f" ({', '.join(sorted(judged, key=finding_order))})" if judged else "")
        + (f"; {len(waits)} wait for their chapter's runs" if waits else "")
        + (f"; {', '.join(NOT_RUN)} cannot run here" if NOT_RUN else "")
        + "."
    )
    header = ("#", "finding", "chapter", "paper", "here", "verdict")
    caveats = [
        f"*Caveat on {f.key}:* {f.caveat}"
        for f in sorted(findings, key=lambda f: finding_order(f.key))
        if f.caveat
    ]
    return "\n\n".join([tally, "\n".join(_table(header, rows)), *caveats]) + "\n"


def sentence(text: str) -> str:
    """`text` as a sentence's start: its first letter upper-cased, unless it is a symbol such as λ
    or τ, which keeps its case (Λ is another quantity)."""
    return text[:1].upper() + text[1:] if text[:1].isascii() else text


def key_result(findings: list[Finding], fresh: list[Finding] | None = None) -> str:
    """A chapter's key-result box (Markdown), from its findings alone: per finding its verdict, the
    paper's headline number against ours (`Finding.headline`, as the summary's matrix shows it) and
    how its core checks came out; then, where the chapter runs fresh seeds (`fresh`: the same
    findings on them), how many of the core checks both ran kept their outcome; then the scale the
    verdicts speak for."""
    paras = []
    for f in findings:
        h, tally = f.headline, f.tally
        if f.unconverged:
            tally += (
                "; some runs did not converge, so the verdict is inconclusive whatever they say"
            )
        else:  # the core checks that decided it, beyond the headline (whose outcome is shown)
            tally += "".join(
                f". {sentence(c.what)}: {c.result}"
                for c in f.checks
                if c.core and c.outcome != HOLDS and c is not h
            )
        paras.append(
            f"**{f.key}, {f.status}.** {f.claim}. The paper: {h.paper} ({h.source}); here: "
            f"{h.value} ({h.result}). {tally}." + (f" *Caveat:* {f.caveat}" if f.caveat else "")
        )
    if fresh is not None:
        both = shared_core(findings, fresh)
        moved = [f"{k}: {a.outcome} → {b.outcome}" for k, a, b in both if a.outcome != b.outcome]
        paras.append(
            f"**Fresh seeds** (new teachers, subsets and student seeds): {len(both) - len(moved)} "
            f"of the {len(both)} core checks that both ran keep their outcome"
            + (f"; {len(moved)} moved ({'; '.join(moved)})." if moved else ".")
        )
    scopes = list(dict.fromkeys(f.scope for f in findings))
    return "\n\n".join(paras + [f"Scale: {'; '.join(scopes)}."])


def _cpu(hours: float, recorded: int, runs: int) -> str:
    """A CPU-hours cell: the sum over the runs that recorded their CPU time, and how many did."""
    if recorded == 0:
        return "not recorded"
    return f"{hours:.2f}" if recorded == runs else f"{hours:.2f} ({recorded} of {runs} runs)"


def _evidence(f: Finding) -> list[str]:
    """A judged finding's verdict, scope, what did not converge (once) and every check, core and
    context, as Markdown lines: the summary's detail and the chapters show the same."""
    lines = [f"Verdict: **{f.status}**. Scope: {f.scope}.", ""]
    if f.unconverged:
        lines += [f"Runs not converged at this scale: {f.unconverged}.", ""]
    if f.caveat:
        lines += [f"*Caveat:* {f.caveat}", ""]
    rows = [
        (
            "core, headline" if c is f.headline else "core" if c.core else "context",
            c.what,
            f"{c.paper} ({c.source})",
            f"{c.here}; length control: {c.note}" if c.note else c.here,
            f"**{c.outcome}**{' — ' + c.why if c.why else ''}" if c.core else c.result,
        )
        for c in f.checks
    ]
    return lines + _table(("kind", "check", "paper", "here", "outcome"), rows) + [""]


def finding_markdown(f: Finding, fresh: bool = False) -> str:
    """A chapter's evidence for one finding, as a rendered table (the summary's detail, under a
    bold title instead of a heading); `fresh`: a fresh-seed replication's, titled as such so that
    its status does not read as the chapter's verdict."""
    if not fresh:
        return "\n".join([f"**{f.key}: {f.claim}**", "", *_evidence(f)])
    lines = _evidence(f)
    lines[0] = lines[0].replace("Verdict:", "On these fresh seeds alone (not the verdict):", 1)
    return "\n".join([f"**{f.key} on fresh seeds (replication): {f.claim}**", "", *lines])


def closest_call(findings: list[Finding]) -> str:
    """The decided core check the length control kept by the smallest share of its distance from
    the threshold, in a sentence ('' when the guard kept none): a reader weighs a verdict that
    rests on it."""
    kept = [(c.kept_by, f.key, c) for f in findings for c in f.checks if c.core and c.kept_by]
    if not kept:
        return ""
    share, key, c = min(kept, key=lambda k: k[0])
    return (
        f"The narrowest call: {key}'s “{c.what}” {c.outcome} because {c.kept_text}, "
        f"{share * 100:.0f} % of that distance. The rule, fixed before the runs, keeps it; of the "
        "decided checks it is the closest to being withdrawn."
    )


def detail(findings: list[Finding], compute: pd.DataFrame, waiting: dict[str, str]) -> str:
    """The summary page's evidence, below its rules: per judged finding its verdict, scope, what
    did not converge (once) and every check, core and context; then the findings not run here and
    the compute of each published chapter."""
    lines = []
    for f in sorted(findings, key=lambda f: finding_order(f.key)):
        lines += [f"#### {f.key}: {f.claim}", "", *_evidence(f)]
    if waiting:
        keys = ", ".join(sorted(waiting, key=finding_order))
        lines += [
            f"{keys}: their chapters' runs are in progress; their evidence appears here "
            "once the runs are stored.",
            "",
        ]
    for key, n in sorted(NOT_RUN.items(), key=lambda kv: finding_order(kv[0])):
        lines += [f"#### {key}: {n.title}", "", n.detail, ""]
    lines += [
        "### Compute",
        "",
        "Each stored run of a published chapter counted once, over every plan the chapter shows. "
        "Wall hours are the runs' training time as recorded, which includes any time their "
        "process was stopped or shared its cores; CPU hours are the process's CPU time (all "
        "its threads), recorded by runs made since it was added.",
        "",
    ]
    rows = [
        (
            f"{{doc}}`{r.experiment}`",  # the chapter's title, as a link
            str(r.runs),
            f"{r.wall_hours:.2f}",
            _cpu(r.cpu_hours, r.cpu_runs, r.runs),
            r.device,
        )
        for r in compute.itertuples()
    ]
    total = compute.sum(numeric_only=True)
    rows.append(
        (
            "**total**",
            str(int(total.runs)),
            f"{total.wall_hours:.2f}",
            _cpu(total.cpu_hours, int(total.cpu_runs), int(total.runs)),
            "",
        )
    )
    lines += _table(("chapter", "runs", "wall hours", "CPU hours", "hardware"), rows)
    return "\n".join(lines) + "\n"


def shared_core(main: list[Finding], fresh: list[Finding]) -> list[tuple[str, Check, Check]]:
    """(finding, the check on the main trials, the same check on fresh seeds) of every core check
    both ran. A replication may run fewer conditions, so a finding's status can rest on other
    checks in each: they are compared check by check."""
    ours = {(f.key, c.what): c for f in main for c in f.checks if c.core}
    return [
        (f.key, ours[(f.key, c.what)], c)
        for f in fresh
        for c in f.checks
        if c.core and (f.key, c.what) in ours
    ]


def replications(profile: str = "budget", loaded: dict[str, list[tuple]] | None = None) -> str:
    """What a rerun reproduces (Markdown, one item per published chapter that runs fresh seeds: its
    second plan): how many of the core checks both ran keep their outcome, and those that moved;
    from `loaded` (`published_tables`) where given."""
    items = []
    for name, shown in (loaded or published_tables(profile)).items():
        if len(shown) < 2:
            continue
        chapter = chapters.get(name)
        both = shared_core(chapter.findings(shown[0][2]), chapter.findings(shown[1][2]))
        moved = [
            f"{key}, {a.what}: {a.outcome} → {b.outcome}"
            for key, a, b in both
            if a.outcome != b.outcome
        ]
        items.append(
            f"* {{doc}}`{name}`: {len(both) - len(moved)} of {len(both)} core checks keep their "
            "outcome on fresh seeds" + (f"; moved: {'; '.join(moved)}." if moved else ".")
        )
    return "\n".join(items or ["* No published chapter has run fresh seeds yet."]) + "\n"


# in book/_generated/, included by book/intro.md
PAGES = ("summary.md", "summary_detail.md", "replications.md")


def summary_markdown(profile: str = "budget") -> dict[str, str]:
    """The summary page's generated parts, by file name (`PAGES`), from results/: the matrix,
    which opens the page; the detail, which follows the rules; and what fresh seeds kept."""
    loaded = published_tables(profile)  # each stored run read once
    findings, compute = all_findings(profile, loaded)
    waiting = pending(profile)
    pages = (
        matrix(findings, waiting),
        detail(findings, compute, waiting),
        replications(profile, loaded),
    )
    return dict(zip(PAGES, pages, strict=True))
