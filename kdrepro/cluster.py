"""A sweep on a Ray cluster: every run not in the store is one Ray task (`python -m kdrepro run ...
--executor ray`).

A student's task takes its teachers' weights as arguments (Ray object refs), so it starts once they
exist: teachers run first, in parallel, and no worker needs a shared filesystem. Workers return
their results to the driver, which writes each result JSON, and each teacher's weights with their
digest, into its own store as tasks finish: a driver killed mid-sweep loses nothing already stored,
and rerunning the command trains only what is missing. A worker killed mid-run is retried by Ray;
the retry resumes from the run's checkpoint when the workers' cache folder (`KDREPRO_CACHE`) is
shared with the killed one, and restarts from step 0 otherwise. Either way the stored result is the
one a sequential run gives with as many torch threads (`--cpus-per-run`): the thread count changes
the order of floating-point sums, so 1 and 2 threads differ in the last digits.

What travels: the driver's `kdrepro` package (Ray's `py_modules`), its git commit (so results record
the code that ran), and its data and cache paths (`KDREPRO_DATA`, `KDREPRO_CACHE`); every node must
hold the datasets there.
"""

import json
import socket
from pathlib import Path

import torch
from tqdm import tqdm

from . import devices, paths, runs, settings, store, train
from .config import RunConfig, TeacherConfig
from .errors import ConfigError, KdreproError
from .files import load_tensors
from .models import Ensemble

RETRIES = 3  # a task whose worker dies is rerun this many times before the sweep fails


class ClusterError(KdreproError, RuntimeError):
    """Ray is not installed, no cluster answers at the address, or a run's worker kept dying."""


def ray_module():
    """Ray, or a one-line ClusterError when it is not installed."""
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--executor ray needs Ray: pip install -r requirements.txt (it pins ray)"
        ) from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at `address` ('auto': the one `ray start --head` started on this node),
    or start a local one with `num_cpus` CPUs when `address` is None."""
    ray = ray_module()
    if ray.is_initialized():
        return
    if address not in (None, "auto", "local") and not address.startswith("ray://"):
        _reachable(address)
    env = settings.for_workers(
        KDREPRO_SOURCE=json.dumps(store.SOURCE),
        KDREPRO_DATA=str(paths.data_root().resolve()),
        KDREPRO_CACHE=str(paths.cache_dir().resolve()),
    )
    try:
        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"py_modules": [str(Path(__file__).resolve().parent)], "env_vars": env},
        )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        raise _no_cluster(address, (str(e).strip().splitlines() or [type(e).__name__])[0]) from None


def _no_cluster(address: str | None, why: str) -> ClusterError:
    return ClusterError(
        f"no Ray cluster at --address {address!r} ({why}); start one with `ray start --head` and "
        "pass its address (or 'auto'), or leave --address out for a local cluster"
    )


def _reachable(address: str) -> None:
    """Fail in seconds, not minutes (ray.init retries an unreachable address for a long time)."""
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "6379")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise _no_cluster(address, str(e)) from None


def _train(cfg: RunConfig, device: str, threads: int, *states: dict) -> tuple[dict, dict]:
    """The Ray task: train `cfg` on this worker from its teachers' (then its control's) weights;
    return its result record and its weights to the driver."""
    torch.set_num_threads(threads)
    dev = devices.resolve_device(device)
    nets = [
        runs.network(t, s, dev)
        for t, s in zip(
            (*getattr(cfg, "teachers", ()), *getattr(cfg, "control", ())), states, strict=True
        )
    ]
    k = len(getattr(cfg, "teachers", ()))
    teacher = Ensemble(nets[:k]).eval() if k else None
    control = Ensemble(nets[k:]).eval() if len(nets) > k else None
    trained = train.fit(cfg, dev, teacher, control, progress=False)
    return runs.record(cfg, trained, dev), trained.weights


def check(gpus_per_run: float, cpus_per_run: int) -> None:
    """A one-line error for a bad resource request, or for Ray missing."""
    if gpus_per_run < 0 or (gpus_per_run > 1 and gpus_per_run != int(gpus_per_run)):
        raise ConfigError(
            f"--gpus-per-run {gpus_per_run}: expected a fraction in [0, 1] or a whole number"
        )
    if cpus_per_run < 1:
        raise ConfigError(f"--cpus-per-run {cpus_per_run}: expected an integer >= 1")
    ray_module()


def run_all(
    configs: list[RunConfig],
    address: str | None = None,
    gpus_per_run: float = 0.0,
    cpus_per_run: int = 1,
    num_cpus: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """The results of `configs`, in order: stored runs are read, the others trained as Ray tasks of
    `cpus_per_run` CPUs and `gpus_per_run` GPUs each (0.25 packs four runs on a GPU; 0 trains on the
    CPU)."""
    check(gpus_per_run, cpus_per_run)
    results = {cfg.run_id: runs.stored(cfg) for cfg in configs}
    missing = [cfg for cfg in configs if results[cfg.run_id] is None]
    if missing:
        results.update(
            _sweep(missing, address, gpus_per_run, cpus_per_run, num_cpus, progress, len(configs))
        )
    return [results[cfg.run_id] for cfg in configs]


def _sweep(
    missing: list[RunConfig], address, gpus_per_run, cpus_per_run, num_cpus, progress, total
) -> dict:
    connect(address, num_cpus)
    ray = ray_module()
    task = ray.remote(_train).options(
        num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=RETRIES, num_returns=2
    )
    device = "cuda" if gpus_per_run > 0 else "cpu"
    weights: dict[str, object] = {}  # teacher run id -> object ref of its weights
    pending: dict[object, RunConfig] = {}  # object ref of a result record -> its config

    def submit(cfg: RunConfig):
        deps = [
            teacher_weights(t)
            for t in (*getattr(cfg, "teachers", ()), *getattr(cfg, "control", ()))
        ]
        record, state = task.remote(cfg, device, cpus_per_run, *deps)
        pending[record] = cfg
        if isinstance(cfg, TeacherConfig):
            weights[cfg.run_id] = state

    def teacher_weights(t: TeacherConfig):
        if t.run_id not in weights:
            path = runs.weights_path(t)
            if path.exists() and runs.stored(t) is not None:  # stored with its weights: ship them
                weights[t.run_id] = ray.put(load_tensors(path)[0])
            # not stored (a teacher outside `missing`), or stored without its weights: train it
            else:
                submit(t)
        return weights[t.run_id]

    for cfg in missing:
        if cfg.run_id not in weights:
            submit(cfg)
    done_results = {}
    with tqdm(
        total=total,
        initial=total - len(missing),
        desc=f"runs on Ray ({len(missing)} to train)",
        disable=not progress,
    ) as bar:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            cfg = pending.pop(ref)
            state = ray.get(weights[cfg.run_id]) if isinstance(cfg, TeacherConfig) else None
            done_results[cfg.run_id] = runs.keep(cfg, _get(ray, ref, cfg), state)
            bar.set_postfix_str(cfg.describe())
            bar.update()
    return done_results


def _get(ray, ref, cfg: RunConfig) -> dict:
    """A finished task's record; an expected failure on the worker is re-raised as itself (one
    line)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, KdreproError):
            raise e.cause from None
        raise
    except ray.exceptions.WorkerCrashedError:
        raise ClusterError(
            f"{cfg.describe()} (run {cfg.run_id}): its worker died {RETRIES + 1} times; see the "
            "Ray logs (/tmp/ray/session_latest/logs), then rerun: stored runs are kept"
        ) from None
