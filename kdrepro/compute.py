"""What runs cost before they run: training time estimated from the throughput measured by
`kdrepro.bench`.

A run's work is counted in forward-pass FLOPs (torch's FlopCounterMode on one image): a training
step costs three forward passes of the trained network per image (forward, and a backward about
twice as dear) plus one of each teacher; evaluations, the teacher's and control's test predictions
and Fig. 6c's loss planes add forward passes. The device's speed comes from the repository's
committed benchmarks (`results/bench/<device>-*.json`): the training FLOP/s of the benchmarked
network nearest in size to the run's, since small networks use a device less well than large ones.
With `pack` > 1 a run that can train in a pack (`packed.unpackable`) is costed at the benchmark's
packed rate (`bench --pack G`, model-images/s of G networks at once), where one was measured; the
rest, one after another.
"""

import json
import math
import statistics
import warnings
from functools import cache
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import augment, data, devices, finish, inputs, logit_cache, packed, schedule, store, surface
from .cases import CASES
from .config import RunConfig, StudentConfig

BACKWARD = 2.0  # a backward pass costs about twice a forward pass
# What `gpu` profiles are sized for until a CUDA benchmark is committed: PreResNet-20 training img/s
# that `python -m kdrepro.bench --device cuda` measured on an H100 (torch 2.11, one network at a
# time, batch 128).
H100_PRERESNET20 = 11_164.0


@cache
def forward_flops(model: str, dataset: str, width: int = 1, norm: str = "batch") -> int:
    """FLOPs of one forward pass of `model` on one example of `dataset` (a text example at its full
    length)."""
    # building a network draws weights: leave the caller's RNG alone. An embedding lookup costs
    # no FLOPs, so a nominal vocabulary counts the same and an estimate needs no data
    with torch.random.fork_rng(devices=[]):
        net = inputs.network(model, dataset, norm, width, vocab=2).eval()
    if dataset in data.TEXT:
        example = torch.ones(1, data.TEXT[dataset], dtype=torch.long)
    else:
        example = torch.zeros(1, *data.SHAPES[dataset])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(example)
    # torch's counter has no formula for LSTMs: per token, a multiply-add by each weight matrix
    # (every layer, direction and gate)
    lstm = sum(
        2 * w.numel()
        for m in net.modules()
        if isinstance(m, torch.nn.LSTM)
        for name, w in m.named_parameters()
        if name.startswith("weight_")
    )
    return counter.get_total_flops() + lstm * (data.TEXT.get(dataset) or 0)


def _flops(cfg: RunConfig) -> int:
    return forward_flops(cfg.model, cfg.dataset, cfg.width, cfg.norm)


def run_flops(cfg: RunConfig, cache_built: bool = False) -> float:
    """The forward-pass FLOPs a run computes: its training steps and evaluations; for a student also
    its teachers' labels (of every batch, or of every view once: `logit_cache`, nothing when
    `cache_built` by an earlier student), the teachers' and control's test predictions, a start near
    the teacher's BatchNorm re-estimate, a one-teacher student's train KL and stage CKA, and Fig.
    6c's loss plane."""
    own = _flops(cfg)
    images, tests = cfg.steps * cfg.batch_size, cfg.test_size or data.SIZES[cfg.dataset][1]
    total = (
        images * (1 + BACKWARD) * own + len(schedule.eval_steps(cfg.steps, cfg.evals)) * tests * own
    )
    if isinstance(cfg, StudentConfig):
        teachers = sum(_flops(t) for t in cfg.teachers)
        labelled = images
        if logit_cache.pays(cfg):
            labelled = (
                0 if cache_built else cfg.examples * augment.view_count(cfg.augment, cfg.crop_pad)
            )
        total += labelled * teachers + tests * (teachers + sum(_flops(t) for t in cfg.control))
        if cfg.init == "interpolate":
            total += cfg.examples * own
        if cfg.compares_stages:
            total += (cfg.examples + min(tests, finish.CKA_IMAGES)) * (own + teachers)
        if cfg.surface:
            total += (
                (cfg.surface**2 + surface.PATH) * min(finish.SURFACE_IMAGES, cfg.examples) * own
            )
    return total


def benchmarks(
    device_type: str, root: Path | None = None, packs: bool = False
) -> tuple[tuple[str, float, str], ...]:
    """(case, training img/s, file) of every committed benchmark row measured on `device_type`,
    compiled or not as this process trains (KDREPRO_COMPILE); with `packs`, the rows that measured
    packed networks, at their packed rate (model-images/s). A file that is not a benchmark's JSON
    is skipped with a warning (an estimate is information, never a reason to stop)."""
    return _benchmarks(device_type, root, devices.compiling(), packs)


@cache
def _benchmarks(
    device_type: str, root: Path | None, compiled: bool, packs: bool
) -> tuple[tuple[str, float, str], ...]:
    rows = []
    # the repository's benchmarks, whichever store a sweep writes to (they describe machines, not
    # runs)
    for path in sorted(((root or store.REPO / "results") / "bench").glob(f"{device_type}-*.json")):
        try:
            found = json.loads(path.read_text())
            if found.get("provenance", {}).get("compiled", False) == compiled:
                rows += [
                    (row["case"], float(row["packed" if packs else "kdrepro"]), path.name)
                    for row in found["results"]
                    if not packs or "packed" in row
                ]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            warnings.warn(
                f"{path}: not a benchmark result ({type(e).__name__}: {e}); left out of time "
                "estimates"
            )
    return tuple(rows)


def flop_rate(
    flops: int, device_type: str, root: Path | None = None, packs: bool = False
) -> tuple[float, str] | None:
    """Training FLOP/s on `device_type` of the benchmarked network nearest (in log FLOPs) to one of
    `flops`, the median over the committed measurements of that network (of its packed networks,
    with `packs`), and where it came from; None when nothing was measured on that device."""
    rows = benchmarks(device_type, root, packs)
    if not rows:
        return None
    sizes = {case: forward_flops(CASES[case].model, CASES[case].dataset) for case, _, _ in rows}
    case = min(sizes, key=lambda c: abs(math.log(sizes[c] / flops)))
    speed = statistics.median(v for c, v, _ in rows if c == case)
    files = sorted({f for c, _, f in rows if c == case})
    name = f"{case}{' packed' if packs else ''}"
    return speed * (1 + BACKWARD) * sizes[case], f"{name} in {', '.join(files)}"


def run_seconds(
    configs: list[RunConfig], device_type: str, root: Path | None = None, pack: int = 1
) -> tuple[list[float], list[str]] | None:
    """Each run's estimated seconds on `device_type`, in the order given (a student reading a logit
    cache an earlier one builds costs less), and the benchmarks they rest on; None when no
    benchmark was measured on that device. With `pack` > 1, runs a pack can take are costed at the
    packed rate where one was measured."""
    seconds, sources, caches = [], set(), set()
    for cfg in configs:
        rate = None
        if pack > 1 and packed.unpackable(cfg, device_type) is None:
            rate = flop_rate(_flops(cfg), device_type, root, packs=True)
        rate = rate or flop_rate(_flops(cfg), device_type, root)
        if rate is None:
            return None
        seconds.append(run_flops(cfg, _cache_built(cfg, caches)) / rate[0])
        sources.add(rate[1])
    return seconds, sorted(sources)


def estimate(
    configs: list[RunConfig], device_type: str, root: Path | None = None, pack: int = 1
) -> tuple[float, list[str]] | None:
    """Estimated seconds to train `configs` on `device_type`, and the benchmarks it rests on (see
    `run_seconds`)."""
    got = run_seconds(configs, device_type, root, pack)
    return None if got is None else (sum(got[0]), got[1])


def _cache_built(cfg: RunConfig, caches: set) -> bool:
    """Whether an earlier student in this estimate built the logit cache `cfg` reads (`caches`
    collects them)."""
    if not isinstance(cfg, StudentConfig) or not logit_cache.pays(cfg):
        return False
    built = logit_cache.shared_by(cfg) in caches
    caches.add(logit_cache.shared_by(cfg))
    return built


def h100_seconds(configs: list[RunConfig]) -> float:
    """Seconds to train `configs` one at a time at `H100_PRERESNET20`: how the `gpu` profiles are
    sized while no CUDA benchmark is committed (a sizing assumption, not one of our measurements).
    """
    rate = H100_PRERESNET20 * (1 + BACKWARD) * forward_flops("preresnet20", "cifar10_jpeg")
    caches: set = set()
    return sum(run_flops(cfg, _cache_built(cfg, caches)) for cfg in configs) / rate


def duration(seconds: float) -> str:
    """Seconds as a reader wants them: s, min or h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h" if seconds < 100 * 3600 else f"{seconds / 3600:,.0f} h"


def estimate_line(
    configs: list[RunConfig], device_type: str, root: Path | None = None, pack: int = 1
) -> str:
    """One sentence: what training `configs` should take on `device_type` (in packs of up to
    `pack`), or how to get an estimate."""
    if not configs:
        return "nothing to train"
    runs = f"{len(configs)} run{'s' * (len(configs) != 1)} to train"
    got = estimate(configs, device_type, root, pack)
    if got is None:
        return (
            f"{runs}; no {device_type} benchmark is committed, so no time estimate (measure "
            f"one: python -m kdrepro.bench --device {device_type} --json "
            f"results/bench/{device_type}-<host>.json)"
        )
    seconds, sources = got
    unpacked = pack > 1 and not any(" packed " in s for s in sources)
    return (
        f"{runs}, about {duration(seconds)} on this {device_type} (from the throughput of "
        f"{'; '.join(sources)}"
        + ("; no packed benchmark, so one run after another: packs should be faster" * unpacked)
        + ")"
    )
