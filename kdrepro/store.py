"""The result store: one JSON file per run under results/<kind>s/<run id>.json, written atomically.

`results/` is committed: it is the record behind every number in the book. Checkpoints are not; they live in
the cache (`paths.cache_dir`) next to a sha256 that is checked before they are loaded.
"""

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from .config import RunConfig

REPO = Path(__file__).resolve().parent.parent


class StoreMiss(LookupError):
    """A run is not in the store and the caller asked not to train."""


class CorruptResult(ValueError):
    """A stored result cannot be read; it is never silently overwritten."""


def results_dir() -> Path:
    """$KDREPRO_RESULTS, else the repository's results/ folder."""
    return Path(os.environ.get("KDREPRO_RESULTS", REPO / "results"))


def result_path(cfg: RunConfig) -> Path:
    return results_dir() / f"{cfg.kind}s" / f"{cfg.run_id}.json"


def get(cfg: RunConfig) -> dict | None:
    """The stored result of a run, or None. A file that is not valid JSON for this run raises CorruptResult."""
    path = result_path(cfg)
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
        ok = result["run_id"] == cfg.run_id
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CorruptResult(f"{path}: unreadable result ({e}); inspect or delete it, then rerun") from None
    if not ok:
        raise CorruptResult(f"{path}: holds run {result['run_id']}, not {cfg.run_id}; delete it, then rerun")
    return result


def atomic_write(path: Path, write) -> None:
    """Call write(file object) on a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def put(cfg: RunConfig, result: dict) -> Path:
    path = result_path(cfg)
    atomic_write(path, lambda f: f.write((json.dumps(result, indent=1, sort_keys=True) + "\n").encode()))
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict) -> str:
    """Atomically save a checkpoint (tensors, dicts, lists, numbers only) and its sha256 sidecar; return the hash."""
    atomic_write(path, lambda f: torch.save(state, f))
    digest = sha256(path)
    atomic_write(path.with_suffix(".sha256"), lambda f: f.write(digest.encode()))
    return digest


def load_checkpoint(path: Path) -> dict | None:
    """Load a checkpoint after checking its sha256 (None if absent); never unpickles arbitrary objects."""
    if not path.exists():
        return None
    sidecar = path.with_suffix(".sha256")
    if not sidecar.exists() or sidecar.read_text().strip() != sha256(path):
        raise CorruptResult(f"{path}: sha256 does not match {sidecar.name}; delete both files to retrain")
    return torch.load(path, map_location="cpu", weights_only=True)


def provenance(device: torch.device) -> dict:
    """Where and with what a run was made: git commit, versions, device name, threads."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain", "--", "kdrepro")),
            "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "device_name": name, "threads": torch.get_num_threads()}
