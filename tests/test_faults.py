"""Crash-proof resume: a run killed with SIGKILL at any instant resumes and ends with the same
numbers.

A child process trains a teacher and then its student with a checkpoint after every step, and kills
itself at its k-th fault point: an optimizer step, an augmented view (in training batches and in the
teacher-logit cache's build, which the student reads), or a write, fsync or rename inside an atomic
file write (every `os.write` is cut in half first, so a kill can land in the middle of a checkpoint,
the logit cache, a weights file or a result). The test then resumes the sweep in this process and
compares everything that is stored with an uninterrupted sweep.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from kdrepro import data, files, runs, store
from kdrepro.config import StudentConfig, TeacherConfig

TINY = dict(
    dataset="mnist",
    model="lenet5",
    train_size=100,
    epochs=2,
    batch_size=25,
    lr=0.05,
    augment="crop",
    crop_pad=2,
    evals=2,
    test_size=500,
)

CHILD = """
import os, signal, sys
import torch
K, count = int(sys.argv[1]), 0

def hit():
    global count
    count += 1
    if count == K:
        os.kill(os.getpid(), signal.SIGKILL)

def wrap(fn, before=hit):
    return lambda *a, **k: (before(), fn(*a, **k))[1]

real_write = os.write
def half_write(fd, data):
    n = real_write(fd, bytes(data[:max(1, len(data) // 2)]))
    hit()
    return n

os.write, os.fsync, os.replace = half_write, wrap(os.fsync), wrap(os.replace)
torch.optim.SGD.step = wrap(torch.optim.SGD.step)
from kdrepro import augment, logit_cache
augment.at_views = wrap(augment.at_views)
real_build = logit_cache.build
def build(*args, **kwargs):
    start = count
    out = real_build(*args, **kwargs)
    print("cache build:", start, count, flush=True)
    return out
logit_cache.build = build
{setup}
print("fault points:", count)
"""

# 27 passes over 100 images against 25 crop views: the student labels from the logit cache
STUDENT = dict(epochs=27, temperature=1.0)
SWEEP = """
from kdrepro import runs
from kdrepro.config import StudentConfig, TeacherConfig
t = TeacherConfig(**{tiny})
runs.run_all([t, StudentConfig(**{{**{tiny}, **{student}, "teachers": (t,)}})], progress=False)
"""


def sweep() -> list:
    t = TeacherConfig(**TINY)
    return [t, StudentConfig(**{**TINY, **STUDENT, "teachers": (t,)})]


def _child(k: int, env: dict, setup: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD.replace("{setup}", setup), str(k)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _stored(cfgs) -> list:
    """What a run leaves that must not depend on kills: metrics, curves, steps, weights digest."""
    return [
        {
            k: store.get(c)[k]
            for k in ("final", "curves", "steps", "teacher_test", "weights_sha256")
            if k in store.get(c)
        }
        for c in cfgs
    ]


def _use(monkeypatch, root):
    monkeypatch.setenv("KDREPRO_RESULTS", str(root / "results"))
    monkeypatch.setenv("KDREPRO_CACHE", str(root / "cache"))


def test_kills_at_16_moments_never_change_the_result(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "KDREPRO_CKPT_SECONDS", "0"
    )  # a checkpoint after every step: many writes to land in
    _use(monkeypatch, tmp_path / "reference")
    runs.run_all(sweep(), progress=False)
    reference = _stored(sweep())
    assert store.get(sweep()[1])["provenance"]["cached_teacher"] is True
    setup = SWEEP.format(tiny=repr(TINY), student=repr(STUDENT))
    env = {
        **os.environ,
        "KDREPRO_RESULTS": str(tmp_path / "count" / "results"),
        "KDREPRO_CACHE": str(tmp_path / "count" / "cache"),
    }
    out = _child(0, env, setup).stdout
    total = int(out.split("fault points:")[1])
    start, end = map(int, out.split("cache build:")[1].split()[:2])
    assert total > 100 and end - start == 25  # one view id per view of the cache
    # 12 evenly spaced moments (each costs a child's ~5 s start), and the cache's: inside its build,
    # and in the write of its file just after
    moments = sorted(
        {int(k) for k in np.linspace(1, total, 12)}
        | {start + 1, (start + end) // 2, end + 1, end + 2}
    )
    for k in moments:
        root = tmp_path / f"k{k}"
        env.update(KDREPRO_RESULTS=str(root / "results"), KDREPRO_CACHE=str(root / "cache"))
        killed = _child(k, env, setup)
        assert killed.returncode == -9, (
            f"fault point {k} of {total}: the child was not killed ({killed.stderr})"
        )
        _use(monkeypatch, root)
        runs.run_all(sweep(), progress=False)  # resume whatever the kill left
        assert _stored(sweep()) == reference, f"killed at fault point {k} of {total}"
        assert not list((root / "cache" / "checkpoints").glob("*.pt"))
        assert len(list((root / "cache" / "logits").glob("*.pt"))) == 1  # one complete cache file


def test_a_killed_dataset_cache_write_is_rebuilt(tmp_path, monkeypatch):
    data._load.cache_clear()
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "reference"))
    images, labels = data.load("cifar10_jpeg", "test")
    setup = "from kdrepro import data\ndata.load('cifar10_jpeg', 'test')"
    env = {**os.environ, "KDREPRO_CACHE": str(tmp_path / "count")}
    total = int(_child(0, env, setup).stdout.split("fault points:")[1])
    for k in sorted({1, total // 2, total}):
        env["KDREPRO_CACHE"] = str(tmp_path / f"k{k}")
        assert _child(k, env, setup).returncode == -9
        monkeypatch.setenv("KDREPRO_CACHE", env["KDREPRO_CACHE"])
        data._load.cache_clear()
        again = data.load("cifar10_jpeg", "test")
        assert torch.equal(again[0], images) and torch.equal(again[1], labels)
        cached = list((tmp_path / f"k{k}" / "datasets").glob("*.pt"))
        assert len(cached) == 1 and torch.equal(files.load_tensors(cached[0])[0][0], images)
    data._load.cache_clear()


def test_a_corrupt_dataset_cache_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path))
    data._load.cache_clear()
    images, _ = data.load("cifar10_jpeg", "test")
    (cached,) = (tmp_path / "datasets").glob("*.pt")
    cached.write_bytes(cached.read_bytes()[:-10])
    data._load.cache_clear()
    with pytest.warns(UserWarning, match="do not match the digest.*rebuilding it"):
        again, _ = data.load("cifar10_jpeg", "test")
    assert torch.equal(again, images)
    data._load.cache_clear()
