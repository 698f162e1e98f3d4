"""Verdicts that stand on their evidence: paired per-trial differences, 95 % intervals, three
outcomes.

Every comparative check is decided on the differences between two conditions *within* each trial
(the same trial index: the same student seed and data subset, and the same teachers unless the
conditions differ in them, as two ensemble sizes do): a t interval over trials. We use the t
interval, not a bootstrap, because the trial is the unit of replication here (teacher, subset and
student seed all change with it) and with 3-5 trials a bootstrap over trials has too few distinct
resamples to give a 95 % interval; test-set sampling noise is smaller than trial-to-trial variation
at these sizes and is left out. A check then
  * holds when the whole interval is on the paper's side,
  * fails when the whole interval is on the other side,
  * is inconclusive when the interval allows both.
A one-sided threshold the paper states (such as "> 99 %") is compared as stated, with no tolerance.
Where the paper says two numbers are equal, or a level is approximate ("at or near the top", "does
not fall"), the check allows ±1.5 points: a margin this reproduction chose, larger than the paper's
trial spread (0.2-0.5 points), because figure read-outs are only good to about a point and our
datasets and networks differ from the paper's.

A finding is *reproduced* when every core check holds, *not reproduced* when a core check fails,
*partly reproduced* when some core checks hold and the rest are inconclusive, and *inconclusive*
when none holds or fails. Context checks (sanity: ensembling raises teacher accuracy, an ensemble
beats its student) are shown, never counted. Runs that did not converge test under-training, not the
paper's claim. Teachers must fit their training set: at least 99 % accuracy in eval mode on their
un-augmented images (`FIT`), else the finding is *inconclusive* at that scale, whatever its checks
say, and the reason gives the numbers. Students are judged by a length control instead: a chapter's
key condition also runs at twice the student steps, paired by trial, and a core check whose distance
from its threshold (0 for a difference) is no larger than what doubling moved its metric is
inconclusive, with that movement printed beside it (`guarded`). Runs stored before teachers
recorded their fit (`clean_train_accuracy`) are judged by the earlier gate: a train metric that
moved by 0.5 points or more (and at least twice its sampling error) over the last quarter of steps,
for teachers below 95 % train accuracy and for every student.

The replication unit is the trial: its seed sets the student's initial weights, its batches and
augmentations, and which pool members form its teachers. In chapters 3-5 every trial distills on the
same subset of the training set (the pool's), so their intervals speak for that subset; chapter 3's
fresh-seed replication draws another. A trial whose value is NaN is an error (`interval`), never
silently dropped; trials missing from one condition of a pair are left out, and every interval
reports the n that remains.
"""

import math
from dataclasses import dataclass, field, replace

import pandas as pd

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
# ±1.5 points: our margin for "equal", "near" and "does not fall" (see the module docstring)
TOLERANCE = 0.015
FIT = 0.99  # a teacher fits its training set: eval-mode accuracy on its un-augmented images
# The earlier gate, for runs stored before `clean_train_accuracy`: a run converged if its train
# metric moved less than 0.5 points over the last quarter of steps (or less than twice the sampling
# error of that move), or, for a teacher, if its running train accuracy reached 95 %.
PLATEAU = 0.005
RUNNING_FIT = 0.95

# Two-sided 95 % quantiles of Student's t, df = 1..30.
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with `df` degrees of freedom (a Cornish-Fisher expansion
    past 30)."""
    if df < 1:
        raise ValueError(f"df={df}: a t interval needs at least 2 trials")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def trials_for(sd: float, half: float) -> int:
    """The fewest trials whose 95 % t interval, at per-trial standard deviation `sd`, is at most
    `half` wide on either side of its mean: how many trials a margin of `half` needs."""
    if not sd > 0 or not half > 0:
        raise ValueError(f"sd={sd}, half={half}: both must be positive")
    n = 2
    while t975(n - 1) * sd / math.sqrt(n) > half:
        n += 1
    return n


@dataclass(frozen=True)
class Interval:
    """A mean over n trials and its 95 % t interval (infinite for a single trial)."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half(self) -> float:
        """The interval's half-width (what a comparison must exceed to be decided)."""
        return (self.hi - self.lo) / 2

    def text(
        self, scale: float = 100.0, digits: int = 1, unit: str = " pt", signed: bool = True
    ) -> str:
        """'+1.2 pt [−0.3, +2.7]' (scale 100 turns fractions into points); `signed=False` for a
        level ('98.0 % [97.6, 98.5]')."""
        sign = "+" if signed else ""
        digits = self._digits((self.lo, self.hi), scale, digits)
        f = lambda v: f"{v * scale:{sign}.{digits}f}".replace("-", "−")  # noqa: E731
        # a mean that rounds to 0 has no side to sign ('0.00', not '−0.00'); an end keeps its sign,
        # which says on which side of 0 the interval stops
        mean = f(self.mean) if float(f"{self.mean * scale:.{digits}f}") else f"{0:.{digits}f}"
        return (
            f"{mean}{unit} [{f(self.lo)}, {f(self.hi)}]"
            if self.n > 1
            else f"{mean}{unit} (1 trial)"
        )

    def _digits(self, values: tuple[float, ...], scale: float, digits: int) -> int:
        """`digits`, plus as many (up to 4 in all) as a value of `values` that is not 0 needs not
        to print as 0: the digit that says which side of 0 an end lies on, or that a half-width is
        not 0."""
        small = lambda d: any(0 < abs(v * scale) < 0.5 * 10**-d for v in values)  # noqa: E731
        while self.n > 1 and digits < 4 and small(digits):
            digits += 1
        return digits

    def here(
        self, prefix: str = "", scale: float = 100.0, digits: int = 1, unit: str = " pt"
    ) -> str:
        """A check's "here" cell: `prefix`, the interval, its half-width and n ('+1.2 pt [−0.3,
        +2.7], half-width 1.5 pt (5 trials)'); scale, digits and unit as for `text`. The
        half-width takes the interval's digits, and more (up to 4) where it would print as 0."""
        half = self._digits((self.half,), scale, self._digits((self.lo, self.hi), scale, digits))
        return (
            f"{prefix}{self.text(scale, digits, unit)}, half-width "
            f"{self.half * scale:.{half}f}{unit} ({self.n} trials)"
        )

    def short(
        self,
        scale: float = 100.0,
        digits: int = 1,
        unit: str = " pt",
        signed: bool = True,
        at: str = "",
    ) -> str:
        """The number, its interval and n in one short phrase, for the summary's matrix:
        '+7.2 pt [+5.5, +8.9], 5 trials'; `at` says where it was measured ('98.0 % [97.6, 98.5]
        at 60,000 images, 5 trials')."""
        where = f" {at}" if at else ""
        if self.n == 1:
            return f"{self.text(scale, digits, unit, signed)}{where}"
        return f"{self.text(scale, digits, unit, signed)}{where}, {self.n} trials"


def interval(values) -> Interval:
    """Mean and 95 % t interval of per-trial values; a NaN among them is an error (a run that
    diverged, or a metric it lacks), never dropped."""
    v = pd.Series(values, dtype=float)
    if v.isna().any():
        raise ValueError(
            f"{int(v.isna().sum())} of {len(v)} trials are NaN: find the run that produced it"
        )
    n = len(v)
    if n == 0:
        raise ValueError("an interval needs at least one trial")
    if n == 1:
        return Interval(float(v.mean()), -math.inf, math.inf, 1)
    half = t975(n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return Interval(float(v.mean()), float(v.mean()) - half, float(v.mean()) + half, n)


def paired(table: pd.DataFrame, a: dict, b: dict, col: str, by: str = "trial") -> Interval:
    """Interval of col(b) - col(a) over the trials present in both conditions; `a`/`b` select rows
    by labels (e.g. {"distill_size": 200}), `by` names the trial label that pairs them."""

    def select(cond):
        rows = table
        for key, value in cond.items():
            rows = rows[rows[key] == value]
        # an under-specified condition would pair every row with every other
        if rows[by].duplicated().any():
            raise ValueError(f"{cond}: several rows per {by}; name the condition fully")
        return rows.set_index(by)[col]

    first, second = select(a), select(b)
    both = first.index.intersection(second.index)  # trials run under both conditions
    return interval(second[both] - first[both])


def rises(iv: Interval) -> str:
    """The paper says the difference is positive."""
    return HOLDS if iv.lo > 0 else FAILS if iv.hi < 0 else INCONCLUSIVE


def falls(iv: Interval) -> str:
    """The paper says the difference is negative."""
    return HOLDS if iv.hi < 0 else FAILS if iv.lo > 0 else INCONCLUSIVE


def at_least(iv: Interval, threshold: float) -> str:
    """The paper says the value is at least `threshold` (pass the threshold less its tolerance)."""
    return HOLDS if iv.lo >= threshold else FAILS if iv.hi < threshold else INCONCLUSIVE


def at_most(iv: Interval, threshold: float) -> str:
    """The paper says the value is at most `threshold`."""
    return HOLDS if iv.hi <= threshold else FAILS if iv.lo > threshold else INCONCLUSIVE


def within(iv: Interval, low: float, high: float) -> str:
    """The paper says the value lies in [low, high] (equivalence: the whole interval must)."""
    return (
        HOLDS
        if low <= iv.lo and iv.hi <= high
        else FAILS
        if iv.hi < low or iv.lo > high
        else INCONCLUSIVE
    )


def every_trial(values, above: float) -> str:
    """For a quantity that cannot be negative (a loss barrier), where a t interval would reach below
    0: holds when every trial is above `above`, fails when none is, else inconclusive. A NaN trial
    is an error."""
    v = pd.Series(values, dtype=float)
    if v.isna().any() or not len(v):
        raise ValueError(f"{int(v.isna().sum())} of {len(v)} trials are NaN (or there are none)")
    return HOLDS if (v > above).all() else FAILS if (v <= above).all() else INCONCLUSIVE


def convergence(table: pd.DataFrame) -> str:
    """'' when a results table's runs count as converged, else what did not, with numbers. Teachers
    must fit their training set (FIT, on `clean_train_accuracy`); students are judged by the
    chapter's length control (`guarded`), not here. Tables of runs stored before
    `clean_train_accuracy` use the earlier gate (see the module docstring)."""
    teachers, students = table.role == "teacher", table.role == "student"
    if "clean_train_accuracy" in table:
        bad = table[teachers & ~(table.clean_train_accuracy >= FIT)]
        if not len(bad):
            return ""
        return (
            f"{len(bad)} of {int(teachers.sum())} teachers do not fit their training set "
            "(eval-mode train accuracy "
            f"{bad.clean_train_accuracy.min() * 100:.1f}–"
            f"{bad.clean_train_accuracy.max() * 100:.1f} %, below "
            f"{FIT * 100:.0f} %)"
        )
    threshold = (2 * table.late_se).clip(lower=PLATEAU) if "late_se" in table else PLATEAU
    moved = table.late_change.abs() >= threshold
    parts = []
    bad = table[teachers & moved & (table.train_accuracy < RUNNING_FIT)]
    if len(bad):
        parts.append(
            f"{len(bad)} of {int(teachers.sum())} teachers neither fit their training set (train "
            f"accuracy {bad.train_accuracy.min() * 100:.0f}–"
            f"{bad.train_accuracy.max() * 100:.0f} %) nor "
            f"plateaued (up to {bad.late_change.abs().max() * 100:.1f} pt over the last quarter)"
        )
    bad = table[students & moved]
    if len(bad):
        parts.append(
            f"{len(bad)} of {int(students.sum())} students' train agreement moved by up to "
            f"{bad.late_change.abs().max() * 100:.1f} pt over the last quarter"
        )
    return "; ".join(parts)


def length_moves(table: pd.DataFrame, short: dict, long: dict, cols) -> dict[str, Interval]:
    """The length control: per column, long − short paired by trial (the key condition at 1x and at
    2x the student steps)."""
    return {col: paired(table, short, long, col) for col in cols}


def guarded(
    check: "Check",
    effect: float,
    moved: Interval | None,
    level: bool = False,
    scale: float = 100.0,
    digits: int = 1,
    unit: str = " pt",
    metric: str = "it",
    of: str = "",
) -> "Check":
    """`check` at the paper's length, kept decided only if its effect (the signed distance of its
    mean from what it tests: 0, or a threshold) exceeds what doubling the student steps moved its
    metric (`moved`, from `length_moves`); otherwise inconclusive, and the movement is stated in its
    note, in the metric's units (`scale`, `digits`, `unit` as `Interval.text` takes them: points, or
    nats for a KL). A difference between conditions can shrink or grow when the key condition
    moves, so any movement at least the effect withdraws it; a `level` (the key condition's own
    metric against a threshold) moves with its condition, so only a movement toward the threshold,
    at least the distance to it, does. A context check, an inconclusive one or one without a
    control is returned as it is. `metric` names what moved where "it" would be unclear; `of`, the
    students whose steps were doubled where they are not the check's own condition."""
    if moved is None or not check.core or check.outcome == INCONCLUSIVE:
        return check
    # the effect and the movement with the digit that tells them apart, where one digit does not
    same = lambda d: f"{abs(effect) * scale:.{d}f}" == f"{abs(moved.mean) * scale:.{d}f}"  # noqa: E731
    while digits < 4 and same(digits):
        digits += 1
    whose = f"the steps of {of}" if of else "the student steps"
    note = f"doubling {whose} moved {metric} {moved.text(scale, digits, unit)}"
    shown = f"{abs(effect) * scale:.{digits}f}{unit}"  # a distance: no sign
    moved_by = f"{moved.mean * scale:+.{digits}f}".replace("-", "−")
    if level and moved.mean * effect >= 0:
        return replace(check, note=f"{note}, away from the threshold")
    if abs(effect) > abs(moved.mean):
        return replace(
            check,
            note=f"{note}, less than its distance from the threshold ({shown})",
            kept_by=(abs(effect) - abs(moved.mean)) / abs(effect),
            kept_text=f"its distance from the threshold ({shown}) exceeds what doubling moved "
            f"{metric} ({moved_by}{unit}) by "
            f"{(abs(effect) - abs(moved.mean)) * scale:.{digits}f}{unit}",
        )
    return replace(
        check,
        outcome=INCONCLUSIVE,
        note=f"{note}, at least its distance from the threshold ({shown}), so "
        f"the check {'held' if check.outcome == HOLDS else 'failed'} only at this length",
        why="the length control withdrew it",
    )


def times(long: int) -> str:
    """A length control's multiple of the student steps in prose: 2 -> 'twice', 5 -> '5×'."""
    return "twice" if long == 2 else f"{long:g}×"


def guard_rule(long: int | None, metric: str, where: str) -> str:
    """The sentence that states `guarded`'s rule in a chapter whose length control (`long` times
    the student steps; None: none at this profile) ran in `where`, and moved `metric`."""
    if not long:
        return "This profile runs no length control, so no check is withdrawn by one."
    moved = "doubling the student steps" if long == 2 else f"{long:g}× the student steps"
    return (
        "Every core check is withdrawn to inconclusive when its effect is no larger than what "
        f"{moved} moved {metric} in {where}."
    )


@dataclass
class Check:
    """One testable sub-claim: what, where in the paper, the paper's number, ours, the outcome."""

    what: str
    source: str
    paper: str
    here: str
    outcome: str
    core: bool = True
    note: str = ""  # why a decided outcome was kept or withdrawn (`guarded`)
    # `here`'s number alone, short (`Interval.short`): what the summary's matrix shows of the
    # check a finding's `headline` returns, where it must be set
    value: str = ""
    # marks a finding's headline when it is not its first core check (see `Finding.headline`)
    headline: bool = False
    # why an inconclusive check does not decide, in a few words ('' when it decides, or when its
    # interval simply allows both directions): its condition is out of reach, or the length
    # control withdrew it. The matrix and the evidence show it beside the outcome.
    why: str = ""
    # how narrowly the length control kept a decided check (`guarded`): its distance from the
    # threshold less the movement, as a share of that distance (None: not kept by a guard), and
    # the two numbers in words
    kept_by: float | None = None
    kept_text: str = ""

    def __post_init__(self) -> None:
        if self.why and self.outcome != INCONCLUSIVE:
            raise ValueError(f"{self.what}: only an inconclusive check says why it does not decide")

    @property
    def result(self) -> str:
        """The outcome, with why it does not decide where that is not the interval itself."""
        return f"{self.outcome} — {self.why}" if self.why else self.outcome


@dataclass
class Finding:
    key: str
    claim: str
    checks: list[Check] = field(default_factory=list)
    scope: str = ""  # what data, model and scale the checks ran at
    unconverged: str = ""  # what did not converge (`convergence`); '' when everything did
    # a reading of the runs that qualifies the verdict without changing it (one or two sentences;
    # says so where it was added after the runs were seen); '' when there is none
    caveat: str = ""

    @property
    def status(self) -> str:
        core = [c.outcome for c in self.checks if c.core]
        if not core:
            raise ValueError(f"{self.key}: a finding needs at least one core check")
        if self.unconverged:
            return "inconclusive"
        if FAILS in core:
            return "not reproduced"
        if all(o == HOLDS for o in core):
            return "reproduced"
        return "partly reproduced" if HOLDS in core else "inconclusive"

    @property
    def headline(self) -> Check:
        """The check that states the claim, which the summary's matrix shows: the core check its
        chapter marks `headline=True`, else its first core check (chapters list the check that
        states the claim first unless they mark another)."""
        core = [c for c in self.checks if c.core]
        marked = [c for c in self.checks if c.headline]
        if not core or len(marked) > 1 or any(not c.core for c in marked):
            raise ValueError(f"{self.key}: a finding needs one headline, a core check")
        check = marked[0] if marked else core[0]
        if not check.value:
            raise ValueError(f"{self.key}: its headline check ({check.what}) has no short value")
        return check

    @property
    def tally(self) -> str:
        """How its core checks came out: '3 of 4 core checks hold, 1 fails'."""
        core = [c.outcome for c in self.checks if c.core]
        held, failed = core.count(HOLDS), core.count(FAILS)
        fails = f", {failed} fail{'s' * (failed == 1)}" if failed else ""
        return f"{held} of {len(core)} core checks {'holds' if held == 1 else 'hold'}{fails}"

    @property
    def because(self) -> str:
        """The sentence a chapter puts after its verdict ('' when reproduced): under 'not
        reproduced', the failed core checks, then the undecided ones apart; else what keeps it from
        reproduced."""
        if not self.reason:
            return ""
        if self.status != "not reproduced":
            return f" What keeps it from being reproduced: {self.reason}."
        # a failed check is the reason; undecided ones are not, but a reader should see them
        core = [c for c in self.checks if c.core]
        failed = "; ".join(f"{c.what}: {c.result}" for c in core if c.outcome == FAILS)
        open_ = "; ".join(f"{c.what}: {c.result}" for c in core if c.outcome == INCONCLUSIVE)
        return f" Why it is not reproduced: {failed}." + (f" Undecided: {open_}." if open_ else "")

    @property
    def reason(self) -> str:
        """Why the verdict is not 'reproduced': unconverged runs, and the core checks that did not
        hold."""
        why = [f"runs not converged at this scale ({self.unconverged})"] if self.unconverged else []
        return "; ".join(
            why + [f"{c.what}: {c.result}" for c in self.checks if c.core and c.outcome != HOLDS]
        )

    def text(self) -> str:
        """The finding, its verdict and each check on a few short lines (readable at page width)."""
        lines = [f"{self.key}: {self.claim}", f"verdict: {self.status.upper()}"]
        for c in self.checks:
            lines += [
                f"- {c.what}{'' if c.core else ' (context, not counted)'}: {c.result}",
                f"    paper ({c.source}): {c.paper}",
                f"    here: {c.here}",
            ]
            lines += [f"    length control: {c.note}"] if c.note else []
        return "\n".join(lines)
