"""The networks `kdrepro.bench` measures, and what `kdrepro.compute` reads off its measurements:
apart from the benchmark's own imports (PIL, DataLoader), which a sweep that only estimates its time
does not need."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    model: str
    dataset: str
    policy: str  # kdrepro's augmentation policy; the conventional transforms are built to match it
    pad: int
    images: dict[
        str, int
    ]  # default images timed per measurement, by device type (~10-30 s each on the 2-core CPU:
    #                         shorter windows left LeNet-5's ratio at the mercy of one noisy second)
    target: float  # kdrepro / conventional throughput to reach
    epoch_target: float | None = None  # seconds per 50k-image kdrepro epoch (GPU target)


CASES: dict[str, Case] = {
    "lenet5": Case("lenet5", "mnist", "crop", 2, {"cpu": 100_000, "cuda": 60_000}, 3.0),
    "preresnet8": Case(
        "preresnet8", "cifar10_jpeg", "crop_flip", 4, {"cpu": 10_000, "cuda": 50_000}, 1.2
    ),
    "preresnet20": Case(
        "preresnet20", "cifar10_jpeg", "crop_flip", 4, {"cpu": 10_000, "cuda": 50_000}, 1.2
    ),
    "preresnet56": Case(
        "preresnet56", "cifar10_jpeg", "crop_flip", 4, {"cpu": 1_000, "cuda": 50_000}, 5.0, 3.0
    ),
}
