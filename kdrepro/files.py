"""Safe files: one atomic writer, one digest helper, and tensor files that carry their own digest.

Every file kdrepro writes (results, checkpoints, teacher weights, decoded datasets) goes through
`atomic_write`: a SIGKILL at any instant leaves either the old file or the new one, never a torn
one. A tensor file is a single file whose header holds the sha256 of its payload, so there is no
second file to fall out of step with it.
"""

import hashlib
import io
import os
import tempfile
from pathlib import Path

import torch

from .errors import KdreproError

MAGIC = b"KDREPRO1"  # then 32 bytes of sha256(payload), then the payload (a torch.save archive)


class CorruptFile(KdreproError, ValueError):
    """A file's bytes do not match its digest, or it is not one of ours."""


def sha256(data: bytes | os.PathLike) -> str:
    """Hex sha256 of bytes, or of a file's contents (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    if isinstance(data, (bytes, bytearray, memoryview)):
        h.update(data)
        return h.hexdigest()
    with open(data, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise


def save_tensors(path: Path, obj) -> str:
    """Atomically save tensors, dicts, lists and numbers with their digest in the header; return the
    digest."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).digest()
    atomic_write(path, MAGIC + digest + payload)
    return digest.hex()


def load_tensors(path: Path):
    """What `save_tensors` wrote, after checking its digest (CorruptFile if it does not match);
    never unpickles arbitrary objects (weights_only). Returns (object, hex digest)."""
    raw = path.read_bytes()
    head, digest, payload = (
        raw[: len(MAGIC)],
        raw[len(MAGIC) : len(MAGIC) + 32],
        raw[len(MAGIC) + 32 :],
    )
    if head != MAGIC or hashlib.sha256(payload).digest() != digest:
        raise CorruptFile(
            f"{path}: its contents do not match the digest in its header (truncated or altered)"
        )
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True), digest.hex()
