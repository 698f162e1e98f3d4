"""A run's training state on disk, so that a run killed at any instant resumes where it stopped and
ends with the same numbers; and what a checkpoint (or a stored run) must have been computed by
(`fingerprint`)."""

import os

import numpy as np
import torch
import torchvision
from tqdm import tqdm

from .config import RunConfig
from .devices import compiling
from .files import CorruptFile, load_tensors, save_tensors
from .paths import cache_dir

# The version of the training numerics. Bump it with any change that alters a trained number (data
# order, augmentation, schedule, loss, model init, metrics); stored runs of another version are
# refused as stale. tests/test_numerics.py pins a tiny run's numbers to it.
NUMERICS = 2


CHECKPOINT = (
    "fingerprint",
    "model",
    "optimizer",
    "augment_rng",
    "torch_rng",
    "cuda_rng",
    "step",
    "curves",
    "window",
    "elapsed",
    "cpu",
)


def fingerprint() -> dict:
    """What determines a run's numbers besides its config: the numerics version, the library
    versions, and `compiled` when the step runs under torch.compile (absent otherwise, so eager
    fingerprints are as they were). A checkpoint of another fingerprint is not resumed: a run is
    compiled or eager from its first step to its last."""
    # plain str: torch.__version__ is a str subclass that a weights_only checkpoint load refuses
    return {
        "numerics": NUMERICS,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "numpy": str(np.__version__),
        **({"compiled": True} if compiling() else {}),
    }


def path(cfg: RunConfig) -> os.PathLike:
    """Where the run's checkpoint lives (the cache folder's `checkpoints/`)."""
    return cache_dir("checkpoints") / f"{cfg.run_id}.pt"


def restore(cfg: RunConfig, state: dict) -> None:
    """Load the saved training state of `cfg` (the CHECKPOINT keys) into `state`, if there is one. A
    checkpoint that fails its digest, lacks a key or was written by other training numerics or
    libraries (`fingerprint`: its steps so far would not be this code's) is discarded with a
    warning, and the run restarts."""
    file = path(cfg)
    if not file.exists():
        return
    try:
        saved, _ = load_tensors(file)
        if set(saved) != set(CHECKPOINT):
            raise CorruptFile(f"{file}: keys {sorted(saved)} are not {sorted(CHECKPOINT)}")
        if saved["fingerprint"] != fingerprint():
            raise CorruptFile(
                f"{file}: written by {saved['fingerprint']}, not by this code ({fingerprint()})"
            )
    except CorruptFile as e:
        tqdm.write(f"warning: {e}; discarding it, {cfg.run_id} restarts from step 0")
        file.unlink(missing_ok=True)
        return
    for key in CHECKPOINT:
        if key in ("model", "optimizer"):
            state[key].load_state_dict(saved[key])
        elif key == "augment_rng":
            state[key].set_state(saved[key])
        elif key == "torch_rng":
            torch.set_rng_state(saved[key])
        elif key == "cuda_rng":  # dropout masks on a GPU (VGG-16) come from the CUDA generators
            if saved[key] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(saved[key])
        elif key != "fingerprint":
            state[key] = saved[key]


def save(cfg: RunConfig, state: dict) -> None:
    """Write the training state of `cfg` (the CHECKPOINT keys), atomically and with its digest."""
    live = {
        "fingerprint": fingerprint(),
        "model": state["model"].state_dict(),
        "optimizer": state["optimizer"].state_dict(),
        "augment_rng": state["augment_rng"].get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    save_tensors(path(cfg), {key: live[key] if key in live else state[key] for key in CHECKPOINT})
