"""Where data is read from, and where derived artefacts (decoded datasets, checkpoints) go."""

import os
from pathlib import Path

from . import settings

REPO = Path(__file__).resolve().parent.parent  # the repository root


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: the argument, else $KDREPRO_DATA, else data/. A relative path is relative
    to the repository root, so that it means the same from a notebook (which runs in book/) as from
    the shell."""
    path = Path(root if root is not None else settings.data()).expanduser()
    return path if path.is_absolute() else REPO / path


def cache_dir(*parts: str) -> Path:
    """A writable cache folder ($KDREPRO_CACHE, else ~/.cache/kdrepro), created on demand.

    Decoded datasets and checkpoints go here so the (possibly read-only) data root is never written.
    """
    path = settings.cache().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
