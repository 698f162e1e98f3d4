"""Running configs through the store: a stored run is returned as is, a missing one is trained (or, in
store-only mode, reported). Teachers' weights are cached so that every chapter distills from the same nets."""

import math
import os
import warnings

import torch
from torch import nn
from tqdm import tqdm

from . import store, train
from .config import RunConfig, StudentConfig, TeacherConfig
from .models import Ensemble
from .paths import cache_dir


def _weights_path(cfg: RunConfig):
    return cache_dir("weights") / f"{cfg.run_id}.pt"


def run(cfg: RunConfig, device: str | torch.device = "cpu", store_only: bool = False, progress: bool = True) -> dict:
    """The result of `cfg`: from the store when present; else trained (teachers first) and stored.

    With store_only (or KDREPRO_STORE_ONLY=1 in the environment, as CI sets it) a missing run is an error."""
    if (result := store.get(cfg)) is not None:
        return result
    if store_only or os.environ.get("KDREPRO_STORE_ONLY") == "1":
        raise store.StoreMiss(f"{cfg.describe()} (run {cfg.run_id}) is not in {store.results_dir()}; "
                              f"run it without store_only (e.g. python -m kdrepro run <experiment> --profile ...)")
    device = train.resolve_device(device)
    teacher = control = None
    if isinstance(cfg, StudentConfig):
        teacher = ensemble(cfg.teachers, device, progress)
        control = ensemble(cfg.control, device, progress) if cfg.control else None
    result, weights = train.fit(cfg, device, teacher, control, progress)
    if isinstance(cfg, TeacherConfig):
        result["weights_sha256"] = store.save_checkpoint(_weights_path(cfg), weights)
    store.put(cfg, result)
    return result


def load_teacher(cfg: TeacherConfig, device: torch.device, progress: bool = True) -> nn.Module:
    """A trained teacher network, from the weight cache or trained now (its stored result is kept)."""
    state = store.load_checkpoint(_weights_path(cfg))
    if state is None:
        stored = store.get(cfg)
        result, state = train.fit(cfg, device, progress=progress)
        digest = store.save_checkpoint(_weights_path(cfg), state)
        if stored is None:
            result["weights_sha256"] = digest
            store.put(cfg, result)
        elif not math.isclose(stored["final"]["accuracy"], result["final"]["accuracy"], abs_tol=1e-9):
            warnings.warn(f"{cfg.describe()}: retrained teacher has accuracy {result['final']['accuracy']:.4f}, "
                          f"the stored run {stored['final']['accuracy']:.4f} (another machine or torch version?)")
    x, _ = train.training_set(cfg)
    model = train.new_model(cfg, x)
    model.load_state_dict(state)
    return model.to(device, memory_format=torch.channels_last).eval()


def ensemble(teachers: tuple[TeacherConfig, ...], device: torch.device, progress: bool = True) -> Ensemble:
    """The teachers as one network whose logit is the log of their mean softmax."""
    return Ensemble([load_teacher(t, device, progress) for t in teachers]).eval()


def run_all(configs: list[RunConfig], device: str = "cpu", store_only: bool = False,
            progress: bool = True) -> list[dict]:
    """Run configs in order (teachers before the students that need them), with an overall progress bar."""
    results = []
    missing = sum(store.get(c) is None for c in configs)
    with tqdm(total=len(configs), desc=f"runs ({missing} to train)", disable=not progress or missing == 0) as bar:
        for cfg in configs:
            bar.set_postfix_str(cfg.describe())
            results.append(run(cfg, device, store_only, progress))
            bar.update()
    return results
