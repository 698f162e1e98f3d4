"""Run configurations: frozen, validated dataclasses whose canonical JSON hashes to a run id.

A `TeacherConfig` trains a network on labels; a `StudentConfig` distills one from its teachers (an
ensemble when there are several). Devices are not part of a config: the same run on another device
has the same id.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from . import augment, data, models, surface
from .errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
LATER_FIELDS = (
    "ood_dataset",
    "ood_size",
    "test_size",
    "init_seed",
    "surface",
    "switch",
    "warmup_epochs",
)


INITS = ("random", "interpolate", "shared")


def _check(ok: bool, name: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r}: {allowed}")


def _check_int(name: str, value, low: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    _check(ok, name, value, f"must be {'None or ' if optional else ''}an integer >= {low}")


@dataclass(frozen=True)
class RunConfig:
    """What every run has: data, network, optimizer and schedule (the defaults are the teacher
    recipe: the paper's App. A.3, the official code's README command)."""

    dataset: str = "cifar100"
    model: str = "preresnet56"
    norm: str = "batch"
    width: int = 1
    train_part: str = "all"  # which half of the training split (Fig. 4's D0/D1), or all of it
    train_size: int | None = None  # stratified subset of that part (None: all); nested across sizes
    subset_seed: int = 0
    epochs: int = 200  # passes over the training set; steps = epochs * examples // batch_size
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.1
    lr_min: float = 0.0
    warmup_epochs: int = 0  # a linear rise to lr over these epochs before the cosine (ImageNet's)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    augment: str = "crop_flip"
    crop_pad: int = 4
    seed: int = 0
    evals: int = 10  # evaluations on the test set, evenly spaced in steps; the last step always
    # a stratified subset of the test set (smoke runs only); None: all of it
    test_size: int | None = None

    def __post_init__(self):
        _check(
            self.dataset in data.NUM_CLASSES,
            "dataset",
            self.dataset,
            f"expected one of {sorted(data.NUM_CLASSES)}",
        )
        models.check_name(self.model)
        text = self.dataset in data.TEXT
        _check(
            (self.model == "bilstm") == text,
            "model",
            self.model,
            f"{self.dataset} is text: expected 'bilstm'"
            if text
            else f"reads token ids: expected a text dataset ({', '.join(data.TEXT)})",
        )
        _check(
            self.model not in models.FIXED or (self.norm, self.width) == ("batch", 1),
            "model",
            self.model,
            "has no norm or width to set: leave norm='batch' and width=1 (its run id hashes them)",
        )
        _check(
            self.augment == "none" or not text,
            "augment",
            self.augment,
            f"{self.dataset} is text, which has no augmentation here: expected 'none'",
        )
        _check(self.norm in models.NORMS, "norm", self.norm, f"expected one of {models.NORMS}")
        _check(
            self.train_part in data.PARTS,
            "train_part",
            self.train_part,
            f"expected one of {data.PARTS}",
        )
        _check(
            self.optimizer in OPTIMIZERS,
            "optimizer",
            self.optimizer,
            f"expected one of {OPTIMIZERS}",
        )
        _check(
            self.augment in augment.POLICIES,
            "augment",
            self.augment,
            f"expected one of {sorted(augment.POLICIES)}",
        )
        for name in ("width", "epochs", "batch_size", "evals"):
            _check_int(name, getattr(self, name), 1)
        for name in ("seed", "subset_seed", "crop_pad", "warmup_epochs"):
            _check_int(name, getattr(self, name), 0)
        for name in ("train_size", "test_size"):
            _check_int(name, getattr(self, name), 1, optional=True)
        _check_int("ood_size", getattr(self, "ood_size", 0), 0)
        # With "D0+D1" the size is per half (half of each batch comes from each), so the smaller
        # half bounds it.
        part = data.part_size(self.dataset, "D0" if self.train_part == "D0+D1" else self.train_part)
        _check(
            self.train_size is None or self.train_size <= part,
            "train_size",
            self.train_size,
            f"must be at most {part}, the size of {self.dataset}/{self.train_part}"
            + (" per half" if self.train_part == "D0+D1" else ""),
        )
        _check(
            self.test_size is None or self.test_size <= data.SIZES[self.dataset][1],
            "test_size",
            self.test_size,
            f"must be at most {data.SIZES[self.dataset][1]}, the size of the {self.dataset} test "
            "set",
        )
        _check(
            self.dataset not in data.MAPPED
            or (self.train_part, self.train_size, getattr(self, "ood_dataset", None))
            == ("all", None, None),
            "dataset",
            self.dataset,
            "is read from disk and trains on its whole training split: leave train_part='all', "
            "train_size=None and no ood_dataset",
        )
        _check(
            self.warmup_steps < self.steps,
            "warmup_epochs",
            self.warmup_epochs,
            f"must leave steps after the warm-up ({self.warmup_steps} of {self.steps} steps)",
        )
        _check(
            self.evals <= self.steps,
            "evals",
            self.evals,
            f"must be at most the number of steps ({self.steps})",
        )
        _check(
            self.train_part != "D0+D1" or self.batch_size % 2 == 0,
            "batch_size",
            self.batch_size,
            "must be even with train_part='D0+D1' (half of each batch comes from each half)",
        )
        _check(self.lr > 0, "lr", self.lr, "must be > 0")
        _check(0 <= self.lr_min <= self.lr, "lr_min", self.lr_min, "must be in [0, lr]")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")

    @property
    def kind(self) -> str:
        raise NotImplementedError

    @property
    def examples(self) -> int:
        """Images in the training (distillation) set, known from the config alone."""
        if self.train_size is None:
            size = data.part_size(self.dataset, self.train_part)
        else:  # "D0+D1" takes train_size images from each half
            size = self.train_size * (2 if self.train_part == "D0+D1" else 1)
        return size + getattr(self, "ood_size", 0)

    @property
    def init_seed_used(self) -> int:
        """The seed of the network's initial weights."""
        return self.seed

    @property
    def steps(self) -> int:
        """Optimizer steps: every batch is full (batches run on across epoch boundaries), none is
        dropped."""
        return max(1, self.epochs * self.examples // self.batch_size)

    @property
    def warmup_steps(self) -> int:
        """Optimizer steps of the linear warm-up (0: none)."""
        return self.warmup_epochs * self.examples // self.batch_size

    def to_dict(self) -> dict:
        d = {"kind": self.kind, **dataclasses.asdict(self)}
        # Options added after runs were stored are hashed only when set, so existing run ids stay
        # valid.
        for key in LATER_FIELDS:
            if key in d and d[key] == type(self).__dataclass_fields__[key].default:
                del d[key]
        return d

    @property
    def run_id(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no whitespace), first 12 hex digits."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def describe(self) -> str:
        size = "" if self.train_size is None else f"[{self.train_size}]"
        return (
            f"{self.kind} {self.model} on {self.dataset}/{self.train_part}{size} seed {self.seed}"
        )


@dataclass(frozen=True)
class TeacherConfig(RunConfig):
    """Supervised training on true labels (cross-entropy)."""

    def __post_init__(self):
        super().__post_init__()
        _check(
            self.augment != "mixup",
            "augment",
            self.augment,
            "mixup has no true label; use it for students only",
        )

    @property
    def kind(self) -> str:
        return "teacher"


@dataclass(frozen=True)
class StudentConfig(RunConfig):
    """Distillation (defaults: the paper's §3.1 and App. A.3): the student sees only teacher labels
    unless alpha > 0.

    `train_part`/`train_size` name the distillation set. `control` teachers are another trial's,
    independent of this student's: the student's agreement with them is the paper's
    independent-student baseline (the paper's §3.2)."""

    teachers: tuple[TeacherConfig, ...] = ()
    control: tuple[TeacherConfig, ...] = ()
    temperature: float = 4.0
    alpha: float = 0.0
    # "random" | "interpolate": lambda * teacher + (1 - lambda) * random | "shared": the teacher's
    # own initial weights (Table 1)
    init: str = "random"
    init_lambda: float = 0.0
    # the seed of a "random" or "interpolate" start; None: `seed`, which gives a teacher of the same
    # seed and architecture its own initial weights (chapter 4's stored students); `plan.fresh_init`
    # keeps them apart
    init_seed: int | None = None
    init_lr_scale: bool = (
        False  # the official code's lr * (1 - lambda) when starting near the teacher
    )
    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.05
    lr_min: float = 1e-6
    # out-of-distribution images added to the distillation set (Fig. 3 "OOD")
    ood_dataset: str | None = None
    ood_size: int = 0
    # Fig. 6c: grid points per axis of the loss plane through teacher, initial and final student
    # (`surface.plane`), computed after training; 0: none
    surface: int = 0
    # share of the steps trained on the true labels alone (alpha = 1) before distilling: Nagarajan
    # et al. (2023)'s late switch; 0: distil throughout
    switch: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        for name in ("teachers", "control"):  # tuples: configs are hashed and frozen
            value = getattr(self, name)
            kinds = (
                sorted({type(t).__name__ for t in value})
                if isinstance(value, (tuple, list))
                else []
            )
            _check(
                isinstance(value, tuple) and kinds in ([], ["TeacherConfig"]),
                name,
                f"{type(value).__name__} of {', '.join(kinds) or 'nothing'}",
                f"expected a tuple of TeacherConfig: pass {name}=tuple(...) of teacher configs",
            )
        _check(
            len(self.teachers) >= 1,
            "teachers",
            len(self.teachers),
            "a student needs at least one teacher",
        )
        _check(self.temperature > 0, "temperature", self.temperature, "must be > 0")
        _check(0 <= self.alpha <= 1, "alpha", self.alpha, "must be in [0, 1]")
        _check(0 <= self.switch < 1, "switch", self.switch, "must be in [0, 1)")
        _check(
            self.switch == 0 or self.ood_dataset is None,
            "switch",
            self.switch,
            "must be 0 with ood_dataset (out-of-distribution images have no true label)",
        )
        _check(0 <= self.init_lambda <= 1, "init_lambda", self.init_lambda, "must be in [0, 1]")
        _check(self.init in INITS, "init", self.init, f"expected one of {INITS}")
        _check_int("init_seed", self.init_seed, 0, optional=True)
        _check(
            self.init_seed is None or self.init != "shared",
            "init_seed",
            self.init_seed,
            "must be None with init='shared' (the student starts from its teacher's initial "
            "weights)",
        )
        _check(
            self.init_seed is None or not self.random_start_is_a_teachers,
            "init_seed",
            self.init_seed,
            "equals a same-architecture teacher's (or control's) seed, so the student would start "
            "from that network's initial weights; pick another (plan.fresh_init), or use "
            "init='shared' to mean it",
        )
        _check(
            self.init == "random" or len(self.teachers) == 1,
            "init",
            self.init,
            "starting from a teacher's weights needs exactly one teacher",
        )
        _check(
            self.init == "random"
            or all(
                (t.model, t.width, t.norm) == (self.model, self.width, self.norm)
                for t in self.teachers
            ),
            "init",
            self.init,
            "starting from a teacher's weights needs the teacher's architecture (model, width, "
            "norm)",
        )
        _check(
            self.surface == 0
            or (isinstance(self.surface, int) and self.surface >= surface.MIN_SIDE),
            "surface",
            self.surface,
            f"must be 0 or an integer >= {surface.MIN_SIDE} (grid points per axis)",
        )
        _check(
            self.surface == 0 or not (self.init == "interpolate" and self.init_lambda == 1),
            "surface",
            self.surface,
            "needs a start off the teacher (init_lambda < 1): at the teacher there is no plane",
        )
        first = self.teachers[0]
        _check(
            self.surface == 0
            or (
                len(self.teachers) == 1
                and self.norm == "layer"
                and (first.model, first.width, first.norm) == (self.model, self.width, self.norm)
            ),
            "surface",
            self.surface,
            "needs one teacher of the student's architecture with norm='layer' (BatchNorm "
            "statistics would change across the plane)",
        )
        images = sorted(data.SHAPES)
        _check(
            self.ood_dataset is None or (self.ood_dataset in images and self.dataset in images),
            "ood_dataset",
            self.ood_dataset,
            f"expected None or, for a dataset of images, one of {images}",
        )
        _check(
            (self.ood_size == 0) == (self.ood_dataset is None),
            "ood_size",
            self.ood_size,
            "must be > 0 exactly when ood_dataset is set",
        )
        _check(
            self.ood_dataset is None or self.ood_size <= data.SIZES[self.ood_dataset][0],
            "ood_size",
            self.ood_size,
            f"must be at most the size of {self.ood_dataset}'s training split",
        )
        _check(
            self.alpha == 0 or self.ood_dataset is None,
            "alpha",
            self.alpha,
            "must be 0 with ood_dataset (out-of-distribution images have no true label)",
        )
        for t in self.teachers + self.control:
            _check(
                t.dataset == self.dataset,
                "teachers",
                t.dataset,
                f"teachers must be trained on {self.dataset}",
            )
        shared = sorted({t.run_id for t in self.teachers} & {t.run_id for t in self.control})
        _check(
            not shared,
            "control",
            shared,
            "the control ensemble shares these teachers with the student's own; "
            "an independent control must share none",
        )

    @property
    def kind(self) -> str:
        return "student"

    @property
    def init_seed_used(self) -> int:
        """The seed of the student's initial weights (of its random endpoint, with
        init='interpolate')."""
        if self.init == "shared":
            return self.teachers[0].seed
        return self.seed if self.init_seed is None else self.init_seed

    def alpha_at(self, step: int) -> float:
        """The true-label loss's weight at `step` (0-based): 1 before the switch, then `alpha`."""
        return 1.0 if step < self.switch * self.steps else self.alpha

    @property
    def random_start_is_a_teachers(self) -> bool:
        """Whether the student's random start (init 'random' or 'interpolate') is the initial
        weights of one of its teachers or control members: a network of its architecture with its
        init seed."""
        arch = (self.model, self.width, self.norm)
        return self.init != "shared" and any(
            (t.model, t.width, t.norm) == arch and t.seed == self.init_seed_used
            for t in self.teachers + self.control
        )

    @property
    def compares_stages(self) -> bool:
        """Whether the student's stage CKA and train KL against its teacher are measured (Table 1,
        Fig. 6b): one teacher, and both networks PreResNets, whose three stages correspond."""
        return (
            len(self.teachers) == 1
            and models.has_stages(self.model)
            and models.has_stages(self.teachers[0].model)
        )

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["teachers"] = [t.run_id for t in self.teachers]
        d["control"] = [t.run_id for t in self.control]
        return d

    def describe(self) -> str:
        return (
            f"{super().describe()} from {len(self.teachers)} teacher(s), tau={self.temperature:g}"
        )
