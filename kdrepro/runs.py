"""Running configs through the store: a stored run is returned as is, a missing one is trained (or,
in store-only mode, reported). Teachers' weights are stored beside the results so that every chapter
distills from the same nets.

A stored run made with other training numerics (`checkpoint.NUMERICS`) is refused as stale: its
numbers would not be what the code computes today. One made with other library versions is served,
and `stack_note` flags it.
"""

import os
import sys
import warnings

import torch
from torch import nn
from tqdm import tqdm

from . import checkpoint, compute, devices, inputs, packed, predictions, settings, store, train
from .config import RunConfig, StudentConfig, TeacherConfig
from .errors import KdreproError
from .files import CorruptFile, load_tensors, save_tensors
from .models import Ensemble


class StaleRun(KdreproError):
    """A stored run was made with other training numerics than the code's."""


def weights_path(cfg: TeacherConfig) -> os.PathLike:
    """Where a teacher's weights are kept: beside the results (`results/weights/<run id>.pt`,
    committed, so that a student can be distilled from exactly the stored teacher on a machine that
    never trained it), in a file that carries its digest in its header."""
    return store.results_dir() / "weights" / f"{cfg.run_id}.pt"


def stored(cfg: RunConfig) -> dict | None:
    """The stored result of `cfg`, or None; a stale one (other training numerics): StaleRun."""
    result = store.get(cfg)
    if result is None:
        return None
    numerics = result.get("fingerprint", {}).get("numerics")
    if numerics != checkpoint.NUMERICS:
        raise StaleRun(
            f"{store.result_path(cfg)}: made with training numerics {numerics}, the code is at "
            f"{checkpoint.NUMERICS}; delete it and rerun (python -m kdrepro run <experiment> "
            "--profile ...)"
        )
    return result


def stack_note(results: list[dict]) -> str:
    """'' when every run was made with this process's library versions, else a sentence naming the
    others."""
    here = {k: v for k, v in checkpoint.fingerprint().items() if k != "numerics"}
    other = sorted(
        {
            ", ".join(f"{k} {r['fingerprint'].get(k)}" for k in here)
            for r in results
            if any(r["fingerprint"].get(k) != v for k, v in here.items())
        }
    )
    return (
        f"Runs made with another library stack ({'; '.join(other)}) are shown as they were stored."
        if other
        else ""
    )


def run(
    cfg: RunConfig,
    device: str | torch.device = "cpu",
    store_only: bool = False,
    progress: bool = True,
) -> dict:
    """The result of `cfg`: from the store when present; else trained (teachers first) and stored.

    With store_only (or KDREPRO_STORE_ONLY=1 in the environment, as CI sets it) a missing run is an
    error."""
    if (result := stored(cfg)) is not None:
        return result
    if store_only or settings.store_only():
        raise store.StoreMiss(
            f"{cfg.describe()} (run {cfg.run_id}) is not in {store.results_dir()}; "
            f"run it without store_only (e.g. python -m kdrepro run <experiment> --profile ...)"
        )
    device = devices.resolve_device(device)
    teacher = control = None
    if isinstance(cfg, StudentConfig):
        teacher = ensemble(cfg.teachers, device, progress)
        control = ensemble(cfg.control, device, progress) if cfg.control else None
    trained = train.fit(cfg, device, teacher, control, progress)
    return keep(cfg, record(cfg, trained, device), trained.weights)


def keep(cfg: RunConfig, result: dict, weights: dict | None = None) -> dict:
    """The one place a finished run is stored, whoever trained it (this process, a pack, a Ray
    worker): a teacher's weights beside the results (their digest joins its record), the record
    unless the store already holds the run, then its checkpoint is dropped (only now: a kill before
    this resumes at the end). Returns the stored record."""
    if isinstance(cfg, TeacherConfig):
        result = {**result, "weights_sha256": keep_weights(cfg, weights)}
    if stored(cfg) is None:
        store.put(cfg, result)
    checkpoint.path(cfg).unlink(missing_ok=True)  # local to the driver, or shared with Ray workers
    return stored(cfg)


def record(cfg: RunConfig, trained: "train.Trained", device: torch.device) -> dict:
    """The stored record of a run: config, curves, final metrics, and what made them."""
    result = {
        "run_id": cfg.run_id,
        "kind": cfg.kind,
        "description": cfg.describe(),
        "config": cfg.to_dict(),
        "final": trained.final,
        "curves": trained.curves,
        "train_examples": cfg.examples,
        "steps": cfg.steps,
        "fingerprint": checkpoint.fingerprint(),
        "provenance": {
            **store.provenance(device),
            "wall_seconds": trained.seconds,
            "cpu_seconds": trained.cpu_seconds,
            "seed": cfg.seed,
            **({"packed": trained.packed} if trained.packed > 1 else {}),
            **({"cached_teacher": True} if trained.cached_teacher else {}),
        },
    }
    if trained.surface is not None:
        result["surface"] = trained.surface
    if trained.deviations is not None:
        result["deviations"] = trained.deviations
    if trained.teacher_test is not None:
        result["teacher_test"] = trained.teacher_test
    else:
        result["probe"] = predictions.probe(cfg, trained.weights, device)
    return result


def load_teacher(cfg: TeacherConfig, device: torch.device, progress: bool = True) -> nn.Module:
    """A trained teacher network, from its stored weights, or trained now (the stored result is
    kept, and a retrained teacher whose weights differ from the stored run's is reported)."""
    try:
        state, digest = (
            load_tensors(weights_path(cfg)) if weights_path(cfg).exists() else (None, None)
        )
    except CorruptFile as e:
        tqdm.write(f"warning: {e}; retraining the teacher")
        state = None
    if state is None:
        trained = train.fit(cfg, device, progress=progress)
        state = trained.weights
        keep(cfg, record(cfg, trained, device), state)
    else:
        _check_weights(cfg, digest)
    return network(cfg, state, device)


def keep_weights(cfg: TeacherConfig, state: dict) -> str:
    """Save a teacher's weights beside the results (the file carries their digest) and return the
    digest; warn when they are not the stored run's."""
    digest = save_tensors(weights_path(cfg), state)
    _check_weights(cfg, digest)
    return digest


def _check_weights(cfg: TeacherConfig, digest: str) -> None:
    result = stored(cfg)
    if result is not None and result.get("weights_sha256") != digest:
        warnings.warn(
            f"{cfg.describe()}: the weights are not the stored run's (digest {digest[:12]} vs "
            f"{str(result.get('weights_sha256'))[:12]}): retrained on another machine or stack?"
        )


def network(cfg: TeacherConfig, state: dict, device: torch.device) -> nn.Module:
    """The teacher network of `cfg` with weights `state`, on `device`, in eval mode."""
    model = inputs.new_model(cfg)
    model.load_state_dict(state)
    return model.to(device, memory_format=torch.channels_last).eval()


def ensemble(
    teachers: tuple[TeacherConfig, ...], device: torch.device, progress: bool = True
) -> Ensemble:
    """The teachers as one network whose logit is the log of their mean softmax."""
    return Ensemble([load_teacher(t, device, progress) for t in teachers]).eval()


def run_packed(configs: list[RunConfig], device: str, pack: int, progress: bool = True) -> None:
    """Train the missing runs among `configs` in packs of 2 to `pack` that share a recipe
    (`packed.fit_pack`: several small networks keep a GPU busy where one leaves it waiting),
    teachers first, then students. Runs a pack cannot take (`packed.unpackable`), a recipe's odd one
    out and a member that failed in its pack are left to the plain loop, which checkpoints them (and
    reports a failure with its own one-line error)."""
    device = devices.resolve_device(device)
    for kind in (TeacherConfig, StudentConfig):
        groups: dict[str, list[RunConfig]] = {}
        for cfg in dict.fromkeys(configs):
            if (
                isinstance(cfg, kind)
                and stored(cfg) is None
                and packed.unpackable(cfg, device.type) is None
            ):
                groups.setdefault(packed.pack_key(cfg), []).append(cfg)
        for group in groups.values():
            # a last chunk of one trains plainly, with checkpoints
            for i in range(0, len(group) - 1, pack):
                chunk = group[i : i + pack]
                teachers = controls = None
                if kind is StudentConfig:
                    teachers = [ensemble(c.teachers, device, progress) for c in chunk]
                    controls = [
                        ensemble(c.control, device, progress) if c.control else None for c in chunk
                    ]
                for cfg, trained in zip(
                    chunk, packed.fit_pack(chunk, device, teachers, controls, progress)
                ):
                    if isinstance(trained, train.Trained):
                        keep(cfg, record(cfg, trained, device), trained.weights)


def run_all(
    configs: list[RunConfig],
    device: str = "cpu",
    store_only: bool = False,
    progress: bool = True,
    pack: int = 1,
) -> list[dict]:
    """Run configs in order (teachers before the students that need them), with an overall progress
    bar; with `pack` > 1 the missing runs first train in packs (`run_packed`)."""
    store_only = store_only or settings.store_only()
    missing = [c for c in dict.fromkeys(configs) if stored(c) is None]
    kind = devices.resolve_device(device).type
    if progress and missing and not store_only:
        tqdm.write(compute.estimate_line(missing, kind, pack=pack), file=sys.stderr)
    if pack > 1 and not store_only:
        run_packed(configs, device, pack, progress)
        missing = [c for c in missing if stored(c) is None]
    results = []
    quiet = not progress or not missing or store_only
    # The bar counts estimated seconds, not runs: stored runs cost nothing and a 5x-long student
    # five times a plain one, so its time left is the estimate left at the pace measured so far.
    got = None if quiet else compute.run_seconds(missing, kind)
    work = dict(zip(missing, got[0])) if got else dict.fromkeys(missing, 1.0)
    done = 0
    # In a notebook or a log (not a terminal) the bar redraws once a minute, not several times a
    # second.
    with tqdm(
        total=sum(work.values()),
        desc=f"runs: 0 of {len(missing)} trained",
        bar_format="{desc}, {percentage:.0f} % of the estimated work |{bar}| {elapsed} so far, "
        "about {remaining} left{postfix}",
        disable=quiet,
        mininterval=0.1 if sys.stderr.isatty() else 60,
    ) as bar:
        for cfg in configs:
            bar.set_postfix_str(cfg.describe())
            results.append(run(cfg, device, store_only, progress))
            if cfg in work:
                done += 1
                bar.set_description_str(f"runs: {done} of {len(missing)} trained", refresh=False)
                bar.update(work.pop(cfg))
    return results
