"""The book's chapters as code: each module holds one chapter's recipe at every scale (`RECIPE`),
its plan (`plan`), every plan it shows (`plans`, the main one first), the scope its verdicts speak
for (`SCOPE`) and its checks (`findings`). Notebooks call these; they hold no logic of their own."""

from types import ModuleType

from ..errors import ConfigError
from ..plan import PROFILES, Plan
from . import (
    augmentation,
    deviations,
    lenet_mnist,
    optimization,
    recycling,
    self_vs_ensemble,
    train_agreement,
    true_labels,
)

CHAPTERS: dict[str, ModuleType] = {
    "lenet_mnist": lenet_mnist,
    "self_vs_ensemble": self_vs_ensemble,
    "augmentation": augmentation,
    "recycling": recycling,
    "train_agreement": train_agreement,
    "optimization": optimization,
    "true_labels": true_labels,
    "deviations": deviations,
}
# Chapters whose budget runs are all stored and whose executed notebooks are in the book. A chapter
# being rerun (its runs span sessions) is left out until they are; the summary page reports its
# progress instead. Chapters 3, 4, 5 and 6 (which reads the students of 3, 4 and 5) and 7 are being
# rerun on converged recipes (teachers that fit their images, students at 3x their steps).
PUBLISHED = ("lenet_mnist",)


def get(name: str) -> ModuleType:
    if name not in CHAPTERS:
        raise ConfigError(f"experiment={name!r}: expected one of {sorted(CHAPTERS)}")
    return CHAPTERS[name]


def plan(name: str, profile: str = "budget", **kwargs) -> Plan:
    """The plan of chapter `name` at `profile` (keyword arguments: seeds, dataset)."""
    return get(name).plan(profile, **kwargs)


def profiles(name: str) -> tuple[str, ...]:
    """The profiles chapter `name` has (a chapter without a recipe of its own has those of every
    chapter it reads)."""
    out = []
    for profile in PROFILES:
        try:
            get(name).plans(profile)
        except ConfigError:
            continue
        out.append(profile)
    return tuple(out)
