"""The book's chapters as code, d2l-style: each module implements the `Chapter` interface (its
recipe at every scale, its plan, the scope its verdicts speak for and its checks); notebooks call
these and hold no logic of their own. `BOOK` registers the chapters in the book's order with whether
each is published, once: the CLI, the summary page, the Makefile's chapter lists
(`python -m kdrepro chapters`) and the tests read it. Adding a chapter means its module, its
notebook and one line in `BOOK`."""

import importlib
from types import ModuleType
from typing import Protocol

import pandas as pd

from ..errors import ConfigError
from ..plan import PROFILES, Plan
from ..verdict import Finding


class Chapter(Protocol):
    """What a chapter module defines. `RECIPE` (profile -> settings) is absent from a chapter that
    only reads other chapters' runs; `plans` (every plan the chapter shows, its main one first) from
    one that shows its main plan alone (see `plans` below)."""

    SCOPE: str  # what the verdicts speak for: the recipe's setting, in words
    # the findings it judges (H1-H15, F1, F2), each in a few words: the summary's matrix shows
    # them, for a chapter whose runs are not all stored too
    FINDINGS: dict[str, str]
    # per finding, (source, paper) of its headline check (`Finding.headline`), which takes them from
    # here: the summary's matrix shows them before the finding is judged (tests/test_report.py holds
    # every budget headline to them)
    HEADLINES: dict[str, tuple[str, str]]

    def plan(self, profile: str = "budget", **kwargs) -> Plan: ...

    def findings(self, table: pd.DataFrame, scope: str = ...) -> list[Finding]: ...


# The book in order: (chapter, published). A published chapter's budget runs are all stored and its
# executed notebook is in the book (and `_toc.yml`); one being rerun, whose runs span sessions, is
# left out until they are, and the summary page reports its progress instead. Chapters 3 and 4 have
# been rerun on converged recipes (teachers that fit their images, students at 3x their steps);
# chapters 5-7 and the part-4 chapters are being rerun on them.
BOOK: tuple[tuple[str, bool], ...] = (
    ("lenet_mnist", True),
    ("self_vs_ensemble", True),
    ("augmentation", True),
    ("recycling", False),
    ("train_agreement", False),
    ("optimization", False),
    ("capacity", False),
    ("true_labels", False),
    ("deviations", False),
)
CHAPTERS: dict[str, ModuleType] = {
    name: importlib.import_module(f".{name}", __name__) for name, _ in BOOK
}
PUBLISHED = tuple(name for name, published in BOOK if published)
# the number the book's prose cites each chapter by (chapter 1 is the fidelity notebook: no runs)
NUMBER = {name: i for i, (name, _) in enumerate(BOOK, start=2)}
for _name, _module in CHAPTERS.items():
    _missing = [
        a for a in ("SCOPE", "FINDINGS", "HEADLINES", "plan", "findings") if not hasattr(_module, a)
    ]
    if _missing:
        raise TypeError(f"chapter {_name}: the Chapter interface needs {', '.join(_missing)}")


def get(name: str) -> ModuleType:
    if name not in CHAPTERS:
        raise ConfigError(f"experiment={name!r}: expected one of {sorted(CHAPTERS)}")
    return CHAPTERS[name]


def plan(name: str, profile: str = "budget", **kwargs) -> Plan:
    """The plan of chapter `name` at `profile` (keyword arguments: seeds, dataset)."""
    return get(name).plan(profile, **kwargs)


def plans(name: str, profile: str = "budget") -> list[Plan]:
    """Every plan chapter `name` shows at `profile`, its main one first: the module's `plans`, or
    its main plan alone."""
    chapter = get(name)
    return chapter.plans(profile) if hasattr(chapter, "plans") else [chapter.plan(profile)]


def profiles(name: str) -> tuple[str, ...]:
    """The profiles chapter `name` has (a chapter without a recipe of its own has those of every
    chapter it reads)."""
    out = []
    for profile in PROFILES:
        try:
            plans(name, profile)
        except ConfigError:
            continue
        out.append(profile)
    return tuple(out)
