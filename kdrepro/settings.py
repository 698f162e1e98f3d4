"""Every `KDREPRO_*` environment variable, read here and nowhere else.

| variable | default | what it sets |
|---|---|---|
| `KDREPRO_DATA` | `data/` | the dataset root; a relative path is relative to the repository (`paths.data_root`) |
| `KDREPRO_CACHE` | `~/.cache/kdrepro` | decoded datasets, checkpoints and teacher-logit caches (`paths.cache_dir`) |
| `KDREPRO_RESULTS` | the repository's `results/` | the result store (`store.results_dir`) |
| `KDREPRO_STORE_ONLY` | `0` | `1`: a run missing from the store is an error, never trained (CI sets it) |
| `KDREPRO_COMPILE` | `0` | `1`: training steps and teacher labels under torch.compile (`devices.compiled`) |
| `KDREPRO_CKPT_SECONDS` | `60` | seconds between a run's checkpoints |
| `KDREPRO_SOURCE` | read from git | the git commit and cleanliness a run records; a Ray driver passes its own to workers |

Each is read when it is used, so a test, a notebook or a Ray worker that sets one sees it at once.
"""

import os
from pathlib import Path

NAMES = (
    "KDREPRO_DATA",
    "KDREPRO_CACHE",
    "KDREPRO_RESULTS",
    "KDREPRO_STORE_ONLY",
    "KDREPRO_COMPILE",
    "KDREPRO_CKPT_SECONDS",
    "KDREPRO_SOURCE",
)


def data() -> str:
    return os.environ.get("KDREPRO_DATA", "data")


def cache() -> Path:
    return Path(os.environ.get("KDREPRO_CACHE", Path.home() / ".cache" / "kdrepro")).expanduser()


def results(default: Path) -> Path:
    return Path(os.environ.get("KDREPRO_RESULTS", default))


def store_only() -> bool:
    return os.environ.get("KDREPRO_STORE_ONLY") == "1"


def compile_steps() -> bool:
    return os.environ.get("KDREPRO_COMPILE", "0") == "1"


def checkpoint_seconds() -> float:
    return float(os.environ.get("KDREPRO_CKPT_SECONDS", 60))


def source() -> str | None:
    """The JSON a Ray driver passed along (`cluster.connect`), or None."""
    return os.environ.get("KDREPRO_SOURCE")


def for_workers(**values: str) -> dict[str, str]:
    """The variables a Ray worker needs, as this process sees them, overridden by `values`."""
    passed = {
        name: os.environ[name]
        for name in ("KDREPRO_CKPT_SECONDS", "KDREPRO_COMPILE")
        if name in os.environ
    }
    return {**passed, **values}
