"""The Ray executor (`kdrepro.cluster`) on a local 2-CPU Ray cluster: an experiment's smoke sweep,
its driver killed mid-way and rerun, gives the same run ids and bit-identical stored numbers as the
sequential path with the same torch threads; a worker SIGKILLed mid-run is retried, resumes from
its checkpoint (the cluster's cache is shared here) and stores the same result; bad input gives one
line."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import torch

from kdrepro import chapters, cluster, runs
from kdrepro.__main__ import main
from kdrepro.config import StudentConfig, TeacherConfig

TINY = dict(
    dataset="mnist",
    model="lenet5",
    train_size=200,
    epochs=10,
    batch_size=25,
    lr=0.05,
    augment="crop",
    crop_pad=2,
    evals=2,
    test_size=500,
)
SAME = (
    "config",
    "final",
    "curves",
    "probe",
    "teacher_test",
    "weights_sha256",
    "steps",
    "fingerprint",
)


@pytest.fixture(scope="module")
def ray_cache(tmp_path_factory):
    """A local Ray cluster whose workers share this cache folder (checkpoints every step)."""
    cache = tmp_path_factory.mktemp("ray_cache")
    saved = {k: os.environ.get(k) for k in ("KDREPRO_CACHE", "KDREPRO_CKPT_SECONDS")}
    os.environ.update(KDREPRO_CACHE=str(cache), KDREPRO_CKPT_SECONDS="0")
    cluster.connect(num_cpus=2)
    yield cache
    ray.shutdown()
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def stored(results: Path) -> dict:
    """Every stored result under `results`, by run id, without what differs between machines or
    executors."""
    out = {}
    for path in sorted(results.glob("*/*.json")):
        r = json.loads(path.read_text())
        out[r["run_id"]] = {k: r.get(k) for k in SAME}
        out[r["run_id"]]["git_commit"] = r["provenance"]["git_commit"]
    return out


def sequential(configs, tmp_path: Path, monkeypatch) -> dict:
    """What the sequential path stores, with one torch thread like each Ray task here (CPU
    reductions with 1 and 2 threads differ in the 7th digit)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with monkeypatch.context() as m:
            m.setenv("KDREPRO_RESULTS", str(tmp_path / "sequential"))
            m.setenv("KDREPRO_CACHE", str(tmp_path / "sequential_cache"))
            runs.run_all(configs, progress=False)
    finally:
        torch.set_num_threads(threads)
    return stored(tmp_path / "sequential")


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether process `pid` is `ancestor` or one of its descendants (following parent ids through
    /proc)."""
    while pid > 1:
        if pid == ancestor:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(
            stat[stat.rindex(")") + 2 :].split()[1]
        )  # the field after the state; the name may hold spaces
    return False


def test_a_worker_killed_mid_run_is_retried_and_stores_the_same_result(
    ray_cache, tmp_path, monkeypatch
):
    teacher = TeacherConfig(**{**TINY, "seed": 11})
    student = StudentConfig(
        **{**TINY, "seed": 11, "epochs": 40, "teachers": (teacher,), "temperature": 2.0}
    )
    expected = sequential([teacher, student], tmp_path, monkeypatch)
    monkeypatch.setenv("KDREPRO_RESULTS", str(tmp_path / "ray"))
    killed = []

    def kill_the_student_mid_run():
        # The student starts after its teacher; kill its worker once it has written a checkpoint.
        checkpoint = ray_cache / "checkpoints" / f"{student.run_id}.pt"
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # some way into the run
        for proc in Path("/proc").glob("[0-9]*"):
            # only this test's workers: descendants of this process (its local cluster), not another
            # sweep's
            try:
                if b"ray::_train" in (proc / "cmdline").read_bytes() and descends_from(
                    int(proc.name), os.getpid()
                ):
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(int(proc.name))
            except OSError:
                pass

    killer = threading.Thread(target=kill_the_student_mid_run)
    killer.start()
    cluster.run_all([teacher, student], progress=False)
    killer.join()
    assert killed, "no worker was running the student when its checkpoint appeared"
    assert stored(tmp_path / "ray") == expected


def test_cluster_errors_are_one_line(tmp_store, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["run", "lenet_mnist", "--profile", "smoke", "--executor", "ray"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --executor ray needs Ray: pip install -r requirements.txt (it pins ray)"
    )
    assert main(["run", "lenet_mnist", "--profile", "smoke", "--cpus-per-run", "2"]) == 2
    assert capsys.readouterr().err.strip() == "error: --cpus-per-run: only with --executor ray"
    assert main(["run", "lenet_mnist", "--executor", "ray", "--gpus-per-run", "-1"]) == 2
    assert "--gpus-per-run -1.0: expected" in capsys.readouterr().err


def test_a_wrong_address_is_one_line(tmp_path):
    env = {**os.environ, "KDREPRO_RESULTS": str(tmp_path / "results")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kdrepro",
            "run",
            "lenet_mnist",
            "--profile",
            "smoke",
            "--executor",
            "ray",
            "--address",
            "127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: no Ray cluster at --address '127.0.0.1:1'"), proc.stderr


def test_a_ray_sweep_killed_mid_way_resumes_to_what_the_sequential_path_stores(
    ray_cache, tmp_path, monkeypatch
):
    """An experiment's smoke sweep on Ray (`python -m kdrepro run ... --executor ray`): its driver,
    killed with its local cluster once a student is stored, loses nothing; the rerun trains only
    what is missing; the stored numbers are bit-identical to the sequential path's; and a third run
    (in this process) trains nothing."""
    main_plan = chapters.plan("lenet_mnist", "smoke").configs
    expected = sequential(main_plan, tmp_path, monkeypatch)
    env = {
        **os.environ,
        "KDREPRO_RESULTS": str(tmp_path / "results"),
        "KDREPRO_CACHE": str(tmp_path / "cache"),
    }
    command = [
        sys.executable,
        "-m",
        "kdrepro",
        "run",
        "lenet_mnist",
        "--profile",
        "smoke",
        "--executor",
        "ray",
    ]
    driver = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # its own process group: the local Ray cluster dies with it
    students = tmp_path / "results" / "students"
    deadline = time.monotonic() + 300
    while (
        not list(students.glob("*.json")) and time.monotonic() < deadline and driver.poll() is None
    ):
        time.sleep(0.05)
    try:
        os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    driver.wait()
    before = {
        p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "results").glob("*/*.json")
    }
    assert any(p.parent.name == "students" for p in before), (
        "the driver was killed before storing a student"
    )
    configs = {c.run_id for plan in chapters.plans("lenet_mnist", "smoke") for c in plan.configs}
    assert len(before) < len(configs)
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = {
        p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "results").glob("*/*.json")
    }
    assert {p: after[p] for p in before} == before  # nothing stored was rewritten
    assert len(after) == len(configs)
    got = stored(tmp_path / "results")
    for run_id in expected:
        assert got[run_id] == expected[run_id], run_id
    assert not list((tmp_path / "cache" / "checkpoints").glob("*.pt"))
    monkeypatch.setenv("KDREPRO_RESULTS", str(tmp_path / "results"))
    results = cluster.run_all(main_plan, progress=False)  # every result read back from the store
    assert [r["run_id"] for r in results] == [c.run_id for c in main_plan]
    assert {p: p.stat().st_mtime_ns for p in after} == {p: m for p, (_, m) in after.items()}
