"""The result store: one JSON file per run under results/<kind>s/<run id>.json, written atomically.

`results/` is committed: it is the record behind every number in the book, with the teachers'
weights (`results/weights/`, digest-carrying files written by `files.save_tensors`; see
`runs.weights_path`). Checkpoints are not committed; they live in the cache (`paths.cache_dir`).
"""

import json
import platform
import subprocess
from pathlib import Path

import torch

from . import settings
from .config import RunConfig
from .errors import KdreproError
from .files import atomic_write
from .paths import REPO


class StoreMiss(KdreproError, LookupError):
    """A run is not in the store and the caller asked not to train."""


class CorruptResult(KdreproError, ValueError):
    """A stored result cannot be read; it is never silently overwritten."""


def results_dir() -> Path:
    """$KDREPRO_RESULTS, else the repository's results/ folder."""
    return settings.results(REPO / "results")


def result_path(cfg: RunConfig) -> Path:
    return results_dir() / f"{cfg.kind}s" / f"{cfg.run_id}.json"


def get(cfg: RunConfig) -> dict | None:
    """The stored result of a run, or None. A file that is not valid JSON for this run raises
    CorruptResult."""
    path = result_path(cfg)
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
        ok = result["run_id"] == cfg.run_id
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise CorruptResult(
            f"{path}: unreadable result ({type(e).__name__}); inspect or delete it, then rerun"
        ) from None
    if not ok:
        raise CorruptResult(
            f"{path}: holds run {result['run_id']}, not {cfg.run_id}; delete it, then rerun"
        )
    return result


def put(cfg: RunConfig, result: dict) -> Path:
    path = result_path(cfg)
    atomic_write(path, (json.dumps(result, indent=1, sort_keys=True) + "\n").encode())
    return path


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# The code a process runs is the code it imported: its commit and cleanliness are read once, now,
# not when a result is stored hours later (by then the tree may have moved on). A Ray worker runs
# the driver's code, shipped without its git folder, so the driver passes its SOURCE along
# (`cluster.connect`).
SOURCE = (
    json.loads(settings.source())
    if settings.source()
    else {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "kdrepro")),
    }
)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def provenance(device: torch.device) -> dict:
    """Where and with what a run was made: git commit of the code this process imported (and whether
    the package had uncommitted changes then), versions, device name, threads."""
    return {
        **SOURCE,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
    }
