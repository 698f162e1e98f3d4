"""What the chapters and the summary page share: mean ± std tables, bands, and the verdict on each finding.

A finding (SPEC §3, H1-H15) is judged by checks computed from stored results. Every check carries the paper's
number and ours, so a verdict is never typed by hand: all pass -> reproduced, some -> partly, none -> not.
"""

from dataclasses import dataclass, field

import pandas as pd

from . import experiments, runs


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
    line, = ax.plot(x, mean, marker="o", label=label, **kw)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)


@dataclass
class Check:
    what: str
    paper: str
    here: str
    passed: bool


@dataclass
class Finding:
    key: str
    claim: str
    checks: list[Check] = field(default_factory=list)
    scope: str = ""  # what data, model and scale the checks ran at

    @property
    def status(self) -> str:
        passed = sum(c.passed for c in self.checks)
        return "reproduced" if passed == len(self.checks) else "partly reproduced" if passed else "not reproduced"

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"check": c.what, "paper": c.paper, "here": c.here, "holds": "yes" if c.passed else "no"}
                             for c in self.checks])


def _increasing(values) -> bool:
    values = list(values)
    return all(b > a for a, b in zip(values, values[1:]))


def lenet_findings(table: pd.DataFrame, scope: str) -> list[Finding]:
    """H1 from the LeNet-5/MNIST runs (chapter 2)."""
    st = mean_std(table[table.role == "student"], ["distill_size"], ["agreement", "accuracy"])
    teacher = table[table.role == "teacher"].accuracy
    largest = st.iloc[-1]
    gap = abs(largest.accuracy_mean - teacher.mean())
    noise = max(2 * std(teacher), 0.01)
    return [Finding("H1", "KD can reach near-perfect fidelity in easy settings (LeNet-5 on MNIST)", [
        Check("test agreement at the largest distillation set", ">99% (EMNIST, ~700k images)",
              f"{pm(largest.agreement_mean, largest.agreement_std, digits=2)}% ({int(largest.distill_size):,} MNIST "
              "images)", largest.agreement_mean >= 0.99),
        Check("agreement rises with distillation-set size", "yes",
              " → ".join(f"{a * 100:.2f}" for a in st.agreement_mean), _increasing(st.agreement_mean)),
        Check("student accuracy within trial noise of the teacher's", "85.3% teacher, no gain",
              f"student {largest.accuracy_mean * 100:.2f}% vs teacher {teacher.mean() * 100:.2f}%", gap <= noise),
    ], scope)]


def ensemble_findings(table: pd.DataFrame, scope: str) -> list[Finding]:
    """H2, H3 and H10 from the self- vs ensemble-distillation runs (chapter 3)."""
    st = mean_std(table[table.role == "student"], ["m", "extra"],
                  ["agreement", "accuracy", "teacher_accuracy", "control_agreement"])
    row = lambda m, extra: st[(st.m == m) & (st.extra == extra)].iloc[0]  # noqa: E731
    extras = sorted(st.extra.unique())
    ms = sorted(st.m.unique())
    s1, s1x = row(1, 0), row(1, extras[-1])
    f2 = Finding("H2", "Self-distillation: fidelity is low, and the student can beat the teacher because of it", [
        Check("self-distillation agreement far below 99%", "≈ 72-75% (R56, CIFAR-100)",
              f"{pm(s1.agreement_mean, s1.agreement_std)}%", s1.agreement_mean < 0.95),
        Check("student accuracy ≥ teacher accuracy (no extra data)", "yes (≈ 72 vs 71%)",
              f"{s1.accuracy_mean * 100:.1f} vs {s1.teacher_accuracy_mean * 100:.1f}%",
              s1.accuracy_mean >= s1.teacher_accuracy_mean),
        Check("extra distillation data raises agreement", "72.5 → 74.5% (+50k GAN)",
              f"{s1.agreement_mean * 100:.1f} → {s1x.agreement_mean * 100:.1f}% (+{int(extras[-1]):,} real)",
              s1x.agreement_mean > s1.agreement_mean),
        Check("... and lowers student accuracy", "72.0 → 71.0%",
              f"{s1.accuracy_mean * 100:.1f} → {s1x.accuracy_mean * 100:.1f}%", s1x.accuracy_mean < s1.accuracy_mean),
    ], scope)
    findings = [f2]
    if 3 in ms:
        s3, s3x = row(3, 0), row(3, extras[-1])
        findings.append(Finding("H3", "Ensemble distillation: fidelity and accuracy move together, a gap remains", [
            Check("3-teacher ensemble agreement well below 99%", "≈ 77-80%",
                  f"{pm(s3.agreement_mean, s3.agreement_std)}%", s3.agreement_mean < 0.95),
            Check("extra data raises agreement", "77 → 80%",
                  f"{s3.agreement_mean * 100:.1f} → {s3x.agreement_mean * 100:.1f}%",
                  s3x.agreement_mean > s3.agreement_mean),
            Check("student accuracy flat or rising with extra data", "slight rise",
                  f"{s3.accuracy_mean * 100:.1f} → {s3x.accuracy_mean * 100:.1f}%",
                  s3x.accuracy_mean >= s3.accuracy_mean - s3.accuracy_std),
            Check("ensemble teacher more accurate than the student", "≈ 76 vs 73%",
                  f"{s3.teacher_accuracy_mean * 100:.1f} vs {s3.accuracy_mean * 100:.1f}%",
                  s3.teacher_accuracy_mean > s3.accuracy_mean),
        ], scope))
    base = st[st.extra == 0].sort_values("m")
    findings.append(Finding("H10", "Larger ensembles are easier to match", [
        Check("agreement increases with m", "77.5 → 86% (m = 1 → 12, figure read-out)",
              " → ".join(f"{a * 100:.1f}" for a in base.agreement_mean) + f" (m = {', '.join(map(str, base.m))})",
              _increasing(base.agreement_mean)),
        Check("teacher accuracy increases with m", "71 → 77.6%",
              " → ".join(f"{a * 100:.1f}" for a in base.teacher_accuracy_mean), _increasing(base.teacher_accuracy_mean)),
    ], scope))
    return findings


# Where each experiment's findings come from, and the scope the verdicts speak for.
SOURCES = {
    "lenet_mnist": (lenet_findings, "LeNet-5, MNIST, 200-image teachers, budget scale"),
    "self_vs_ensemble": (ensemble_findings, "PreResNet-8, CIFAR-10 (JPEG q75) 6k-image teachers, budget scale"),
}

NOT_RUN = {
    "H4": "augmentation policies (Fig. 3): engine supports them; chapter not written yet",
    "H5": "data recycling D0/D1 (Fig. 4): engine supports the halves; chapter not written yet",
    "H6": "train agreement under augmentation (Fig. 5): chapter not written yet",
    "H7": "optimizer and epochs for R20-LN (Fig. 6a): chapter not written yet",
    "H8": "initialization near the teacher (Fig. 6b/c): engine supports it; chapter not written yet",
    "H9": "shared initialization and CKA (Table 1): chapter not written yet",
    "H11": "temperature x ensemble size (Figs. 3, 4, 9): chapter not written yet",
    "H12": "student capacity (Fig. 12): chapter not written yet",
    "H13": "ImageNet and IMDB (Table 2): cannot run here (no ImageNet, no IMDB offline, no GPU in CI)",
    "H14": "true labels, alpha > 0 (Fig. 14): engine supports alpha; chapter not written yet",
    "H15": "calibration of the highest-fidelity student: chapter not written yet",
}


def experiment_table(name: str, profile: str = "budget") -> pd.DataFrame:
    """The stored results of an experiment as a table (StoreMiss if a run is missing)."""
    plan = experiments.plan(name, profile)
    return plan.table(runs.run_all(plan.configs, store_only=True, progress=False))


def all_findings(profile: str = "budget") -> tuple[list[Finding], pd.DataFrame]:
    """Every finding the stored runs can judge, and the compute they took (per experiment)."""
    findings, compute = [], []
    for name, (judge, scope) in SOURCES.items():
        table = experiment_table(name, profile)
        findings += judge(table, scope)
        compute.append({"experiment": name, "runs": len(table), "cpu_hours": table.wall_seconds.sum() / 3600,
                        "device": ", ".join(sorted(table.device_name.unique()))})
    return findings, pd.DataFrame(compute)


def summary_markdown(profile: str = "budget") -> str:
    """The summary page's verdict and compute tables, generated from results/."""
    findings, compute = all_findings(profile)
    judged = {f.key: f for f in findings}
    lines = ["| # | claim | verdict | evidence |", "|---|---|---|---|"]
    for key in [f"H{i}" for i in range(1, 16)]:
        if key in judged:
            f = judged[key]
            evidence = "; ".join(f"{c.what} — paper: {c.paper}, here: {c.here} ({'✓' if c.passed else '✗'})"
                                 for c in f.checks)
            lines.append(f"| {key} | {f.claim} | **{f.status}** ({f.scope}) | {evidence} |")
        else:
            status = "cannot run here" if "cannot run here" in NOT_RUN[key] else "not yet run"
            lines.append(f"| {key} | — | {status} | {NOT_RUN[key]} |")
    lines += ["", "| experiment | runs | CPU hours | hardware |", "|---|---|---|---|"]
    lines += [f"| {r.experiment} | {r.runs} | {r.cpu_hours:.2f} | {r.device} |" for r in compute.itertuples()]
    lines.append(f"| **total** | {compute.runs.sum()} | {compute.cpu_hours.sum():.2f} | |")
    return "\n".join(lines) + "\n"
