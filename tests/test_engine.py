"""The experiment engine: config validation and hashing, the result store, resume, teacher labelling, init."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from kdrepro import config, data, experiments, runs, store, train
from kdrepro.config import StudentConfig, TeacherConfig

TINY = dict(dataset="mnist", model="lenet5", train_size=200, epochs=3, batch_size=50, lr=0.05, augment="crop",
            crop_pad=2, evals=1)


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    monkeypatch.setenv("KDREPRO_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "cache"))
    return tmp_path


def teacher(**kw) -> TeacherConfig:
    return TeacherConfig(**{**TINY, **kw})


def student(**kw) -> StudentConfig:
    return StudentConfig(**{**TINY, "teachers": (teacher(),), "temperature": 1.0, **kw})


@pytest.mark.parametrize("field, value, message", [
    ("temperature", 0.0, "temperature=0.0: must be > 0"),
    ("temperature", -1.0, "temperature=-1.0: must be > 0"),
    ("alpha", 1.5, r"alpha=1.5: must be in \[0, 1\]"),
    ("init_lambda", -0.1, r"init_lambda=-0.1: must be in \[0, 1\]"),
    ("dataset", "imagenet", "dataset='imagenet': expected one of"),
    ("model", "resnet18", "model='resnet18'"),
    ("optimizer", "lbfgs", "optimizer='lbfgs': expected one of"),
    ("augment", "cutout", "augment='cutout': expected one of"),
    ("epochs", 0, "epochs=0: must be >= 1"),
    ("train_part", "D2", "train_part='D2'"),
])
def test_invalid_configs_raise_one_line(field, value, message):
    with pytest.raises(ValueError, match=message) as e:
        student(**{field: value})
    assert "\n" not in str(e.value)


def test_other_invalid_combinations():
    with pytest.raises(ValueError, match="teachers"):
        StudentConfig(**TINY)
    with pytest.raises(ValueError, match="mixup"):
        teacher(augment="mixup")
    with pytest.raises(ValueError, match="interpolation needs exactly one teacher"):
        student(teachers=(teacher(), teacher(seed=1)), init="interpolate")
    with pytest.raises(ValueError, match="unknown profile|profile='huge'"):
        experiments.plan("lenet_mnist", "huge")


def test_cuda_without_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device='cuda': no CUDA GPU"):
        train.resolve_device("cuda")


def test_run_id_is_stable_and_sensitive():
    t = teacher()
    canonical = json.dumps(t.to_dict(), sort_keys=True, separators=(",", ":"))
    assert t.run_id == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert t.run_id == teacher().run_id
    assert t.run_id != teacher(seed=1).run_id
    s = student()
    assert s.to_dict()["teachers"] == [t.run_id]
    assert s.run_id != student(teachers=(teacher(seed=1),)).run_id
    assert s.run_id != t.run_id


def test_store_round_trip_atomic_and_corrupt(tmp_store):
    cfg = teacher()
    assert store.get(cfg) is None
    store.put(cfg, {"run_id": cfg.run_id, "final": {"accuracy": 0.5}})
    assert store.get(cfg)["final"]["accuracy"] == 0.5
    assert [p.name for p in store.result_path(cfg).parent.iterdir()] == [f"{cfg.run_id}.json"]  # no temp files
    store.result_path(cfg).write_text("{truncated")
    with pytest.raises(store.CorruptResult, match=cfg.run_id):
        store.get(cfg)
    with pytest.raises(store.CorruptResult):
        runs.run(cfg)  # a corrupt file is never overwritten by a rerun
    assert store.result_path(cfg).read_text() == "{truncated"


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        store.atomic_write(path, boom)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.json"]


def test_store_only_mode(tmp_store):
    with pytest.raises(store.StoreMiss, match="not in"):
        runs.run(teacher(), store_only=True)


def test_checkpoint_sha256_is_verified(tmp_store):
    path = tmp_store / "w.pt"
    store.save_checkpoint(path, {"w": torch.ones(3)})
    assert torch.equal(store.load_checkpoint(path)["w"], torch.ones(3))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(store.CorruptResult, match="sha256"):
        store.load_checkpoint(path)


def test_teacher_then_student_end_to_end(tmp_store):
    s = student(control=(teacher(seed=1),))
    res = runs.run(s, progress=False)
    assert store.get(s) == res
    assert store.get(teacher()) is not None and store.get(teacher(seed=1)) is not None
    f = res["final"]
    for key in ("accuracy", "nll", "ece", "agreement", "kl", "control_agreement", "train_agreement"):
        assert key in f
    assert res["provenance"]["wall_seconds"] > 0 and res["provenance"]["torch"] == torch.__version__
    assert runs.run(s, store_only=True) == res  # now served from the store


def test_teacher_labels_the_exact_augmented_batch(tmp_store, monkeypatch):
    """The teacher sees every batch the student sees, each step anew (nothing cached across steps)."""
    seen_student, seen_teacher = [], []
    t = runs.ensemble((teacher(),), torch.device("cpu"), progress=False)
    real_forward = type(t).forward
    monkeypatch.setattr(type(t), "forward", lambda self, x: (seen_teacher.append(x.clone()), real_forward(self, x))[1])
    model_cls = type(train.new_model(student(), torch.zeros(1, 1, 28, 28, dtype=torch.uint8)))
    real_student = model_cls.forward
    monkeypatch.setattr(model_cls, "forward", lambda self, x: (seen_student.append(x.clone()) if self.training
                                                               else None, real_student(self, x))[1])
    cfg = student(epochs=2, augment="crop")
    train.fit(cfg, torch.device("cpu"), t, progress=False)
    steps = 2 * 4  # 200 images, batch 50
    teacher_train = [x for x in seen_teacher if x.shape[0] == 50]
    assert len(seen_student) == steps and len(teacher_train) == steps
    for a, b in zip(seen_student, teacher_train):
        assert torch.equal(a, b)
    assert not torch.equal(seen_student[0], seen_student[4])  # a new augmentation per epoch


def test_interpolation_endpoints_layernorm(tmp_store):
    net_cfg = dict(dataset="mnist", model="preresnet8", norm="layer", train_size=100, epochs=1, batch_size=50,
                   augment="crop", crop_pad=2, evals=1)
    t = TeacherConfig(**net_cfg)
    teacher_net = runs.ensemble((t,), torch.device("cpu"), progress=False)
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    for lam, same in ((1.0, True), (0.0, False)):
        s = StudentConfig(**net_cfg, teachers=(t,), init="interpolate", init_lambda=lam)
        model = train.new_model(s, x).to(memory_format=torch.channels_last)  # as in train.fit
        fresh = {k: v.clone() for k, v in model.state_dict().items()}
        train.interpolate_(model, teacher_net.members[0], lam)
        model.eval()
        cpu = torch.device("cpu")
        z_s, z_t = train.predict(model, x, cpu), train.predict(teacher_net.members[0], x, cpu)
        assert torch.equal(z_s, z_t) == same
        if not same:
            assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.items())


def test_interpolation_midpoint_and_batchnorm_recomputed():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    train.interpolate_(a, b, 0.25)
    assert torch.allclose(a.weight, 0.25 * wb + 0.75 * wa)
    net = train.new_model(teacher(model="preresnet8", dataset="cifar10_jpeg"), torch.zeros(1, 3, 32, 32))
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    train.recompute_batchnorm(net, x, torch.device("cpu"))
    bn = net.layer1[0].bn1
    # The first BN sees the stem conv's output: its running mean is the mean over all 64 images.
    feats = net.conv1(x.float() / 127.5 - 1)
    assert torch.allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-4)
    assert bn.momentum == 0.1


RESUME_SCRIPT = """
import sys
from kdrepro import runs
from kdrepro.config import TeacherConfig
cfg = TeacherConfig(**{tiny})
runs.run(cfg, progress=False)
"""


def test_resume_after_sigkill_gives_identical_metrics(tmp_path, monkeypatch):
    cfg_kw = {**TINY, "epochs": 40, "evals": 4}
    cfg = TeacherConfig(**cfg_kw)
    env = {**os.environ, "KDREPRO_CKPT_SECONDS": "0"}
    # Uninterrupted reference run.
    monkeypatch.setenv("KDREPRO_RESULTS", str(tmp_path / "a"))
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "ca"))
    reference = runs.run(cfg, progress=False)
    # A second run, killed with SIGKILL once it has written a checkpoint, then started again.
    env.update(KDREPRO_RESULTS=str(tmp_path / "b"), KDREPRO_CACHE=str(tmp_path / "cb"))
    script = RESUME_SCRIPT.format(tiny=repr(cfg_kw))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    ckpt = tmp_path / "cb" / "checkpoints" / f"{cfg.run_id}.pt"
    deadline = time.time() + 120
    while not ckpt.with_suffix(".sha256").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the run finished before it could be killed; make it longer"
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert 0 < killed_at < cfg.epochs
    monkeypatch.setenv("KDREPRO_RESULTS", str(tmp_path / "b"))
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "cb"))
    resumed = runs.run(cfg, progress=False)
    assert resumed["final"] == reference["final"]
    assert resumed["curves"] == reference["curves"]
    assert not ckpt.exists()  # cleaned up after the run completed


def test_plans_are_well_formed():
    for name in experiments.EXPERIMENTS:
        for profile in experiments.PROFILES:
            plan = experiments.plan(name, profile)
            roles = [labels["role"] for labels, _ in plan.rows]
            assert roles == sorted(roles, key=lambda r: r != "teacher")  # teachers come first
            ids = [c.run_id for c in plan.configs]
            assert len(ids) == len(set(ids))
            for cfg in plan.configs:
                if isinstance(cfg, StudentConfig):
                    assert all(t in plan.configs for t in cfg.teachers + cfg.control)


def test_lenet_plan_distillation_sets_contain_teacher_set():
    plan = experiments.plan("lenet_mnist", "budget")
    s = [c for c in plan.configs if isinstance(c, StudentConfig)]
    steps = {c.epochs * c.train_size // c.batch_size for c in s}
    assert max(steps) / min(steps) < 1.01  # the same number of steps for every distillation-set size
    _, labels = data.load("mnist", "train")
    for c in s:
        t_idx = set(data.subset(labels, c.teachers[0].train_size, "all", c.teachers[0].subset_seed).tolist())
        s_idx = set(data.subset(labels, c.train_size, "all", c.subset_seed).tolist())
        assert t_idx <= s_idx
    assert config.PARTS == data.PARTS


def test_out_of_distribution_images_join_the_distillation_set():
    s = student(ood_dataset="cifar10_jpeg", ood_size=50)
    x, y = train.training_set(s)
    assert x.shape == (250, 1, 28, 28) and x.dtype == torch.uint8
    assert (y[:200] >= 0).all() and (y[200:] == -1).all()
    with pytest.raises(ValueError, match="ood_size=0: must be > 0 exactly when ood_dataset is set"):
        student(ood_dataset="cifar10_jpeg")
    with pytest.raises(ValueError, match="alpha=0.5: must be 0 with ood_dataset"):
        student(ood_dataset="cifar10_jpeg", ood_size=5, alpha=0.5)


def test_later_options_leave_existing_run_ids_unchanged():
    # Ids of runs already in results/ (computed before ood_* existed) must not move when options are added.
    assert "ood_dataset" not in student().to_dict()
    plan = experiments.plan("lenet_mnist", "budget")
    assert plan.configs[3].run_id == "a5abdac7e54a"
    assert experiments.plan("self_vs_ensemble", "budget").configs[-1].run_id == "7c98caf4da2e"
    assert student(ood_dataset="cifar10_jpeg", ood_size=5).run_id != student().run_id
