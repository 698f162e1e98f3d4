"""The experiment engine: config validation and hashing, the result store, resume, teacher
labelling, init."""

import hashlib
import itertools
import json
import math
import os
from dataclasses import replace

import pytest
import torch

from kdrepro import (
    chapters,
    checkpoint,
    data,
    devices,
    errors,
    files,
    finish,
    inputs,
    plan,
    predictions,
    runs,
    schedule,
    store,
    train,
)
from kdrepro.config import StudentConfig, TeacherConfig
from kdrepro.errors import ConfigError

TINY = dict(
    dataset="mnist",
    model="lenet5",
    train_size=200,
    epochs=3,
    batch_size=50,
    lr=0.05,
    augment="crop",
    crop_pad=2,
    evals=1,
)


def teacher(**kw) -> TeacherConfig:
    return TeacherConfig(**{**TINY, **kw})


def student(**kw) -> StudentConfig:
    return StudentConfig(**{**TINY, "teachers": (teacher(),), "temperature": 1.0, **kw})


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("temperature", 0.0, "temperature=0.0: must be > 0"),
        ("temperature", -1.0, "temperature=-1.0: must be > 0"),
        ("alpha", 1.5, r"alpha=1.5: must be in \[0, 1\]"),
        ("init_lambda", -0.1, r"init_lambda=-0.1: must be in \[0, 1\]"),
        ("dataset", "tinyimagenet", "dataset='tinyimagenet': expected one of"),
        ("model", "resnet18", "model='resnet18'"),
        ("optimizer", "lbfgs", "optimizer='lbfgs': expected one of"),
        ("augment", "cutout", "augment='cutout': expected one of"),
        ("epochs", 0, "epochs=0: must be an integer >= 1"),
        ("train_part", "D2", "train_part='D2'"),
        ("seed", -1, "seed=-1: must be an integer >= 0"),
        ("subset_seed", 1.5, "subset_seed=1.5: must be an integer >= 0"),
        ("epochs", True, "epochs=True: must be an integer >= 1"),
        ("train_size", 0, "train_size=0: must be None or an integer >= 1"),
        ("train_size", 70_000, "train_size=70000: must be at most 60000"),
        ("test_size", 20_000, "test_size=20000: must be at most 10000"),
        ("evals", 100, r"evals=100: must be at most the number of steps \(12\)"),
        ("ood_size", -5, "ood_size=-5: must be an integer >= 0"),
        ("warmup_epochs", -1, "warmup_epochs=-1: must be an integer >= 0"),
    ],
)
def test_invalid_configs_raise_one_line(field, value, message):
    with pytest.raises(ConfigError, match=message) as e:
        student(**{field: value})
    assert "\n" not in str(e.value) and isinstance(e.value, ValueError)


def test_other_invalid_combinations():
    with pytest.raises(ValueError, match="teachers"):
        StudentConfig(**TINY)
    with pytest.raises(ValueError, match="mixup"):
        teacher(augment="mixup")
    with pytest.raises(
        ValueError, match="starting from a teacher's weights needs exactly one teacher"
    ):
        student(teachers=(teacher(), teacher(seed=1)), init="interpolate")
    with pytest.raises(ValueError, match="profile='huge'"):
        chapters.plan("lenet_mnist", "huge")
    with pytest.raises(ConfigError, match=r"seeds=\[0, -2\]: expected one or more integers >= 0"):
        chapters.plan("lenet_mnist", "smoke", seeds=(0, -2))
    with pytest.raises(ConfigError, match="each trial needs its own seed"):
        chapters.plan("lenet_mnist", "smoke", seeds=(1, 1))
    with pytest.raises(
        ConfigError,
        match=r"train_size=40000: must be at most 30000, the size of mnist/D0\+D1 per half",
    ):
        student(train_part="D0+D1", train_size=40_000)


def test_a_control_sharing_a_teacher_is_refused_at_plan_time():
    with pytest.raises(
        ConfigError, match="control=.*shares these teachers with the student's own"
    ) as e:
        student(teachers=(teacher(), teacher(seed=1)), control=(teacher(seed=1), teacher(seed=2)))
    assert "\n" not in str(e.value)
    student(teachers=(teacher(),), control=(teacher(seed=1),))  # disjoint: fine


def test_cuda_without_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="device='cuda': no CUDA GPU"):
        devices.resolve_device("cuda")
    with pytest.raises(ConfigError, match="device='tpu'"):
        devices.resolve_device("tpu")


def test_the_allocator_keeps_freed_memory_on_glibc_and_is_left_alone_elsewhere(monkeypatch):
    import ctypes
    import platform

    devices.keep_freed_memory.cache_clear()
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert devices.keep_freed_memory() is glibc
    devices.keep_freed_memory.cache_clear()

    def no_library(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    assert devices.keep_freed_memory() is False  # another platform: nothing set, nothing raised
    assert devices.resolve_device("cpu") == torch.device("cpu")
    devices.keep_freed_memory.cache_clear()  # the next caller sets it again


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
    assert [p.name for p in store.result_path(cfg).parent.iterdir()] == [
        f"{cfg.run_id}.json"
    ]  # no temp files
    store.result_path(cfg).write_text("{truncated")
    with pytest.raises(store.CorruptResult, match=cfg.run_id):
        store.get(cfg)
    with pytest.raises(store.CorruptResult):
        runs.run(cfg)  # a corrupt file is never overwritten by a rerun
    assert store.result_path(cfg).read_text() == "{truncated"


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    path.write_text("old")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        files.atomic_write(path, b"new contents")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.json"]


def test_store_only_mode(tmp_store):
    with pytest.raises(store.StoreMiss, match="not in"):
        runs.run(teacher(), store_only=True)


def test_tensor_files_carry_and_check_their_digest(tmp_store):
    path = tmp_store / "w.pt"
    digest = files.save_tensors(path, {"w": torch.ones(3)})
    obj, read_digest = files.load_tensors(path)
    assert torch.equal(obj["w"], torch.ones(3)) and read_digest == digest and len(digest) == 64
    raw = path.read_bytes()
    for broken in (raw[: len(raw) // 2], raw[:-1] + bytes([raw[-1] ^ 1]), b"not ours" + raw[8:]):
        path.write_bytes(broken)
        with pytest.raises(files.CorruptFile, match="do not match the digest"):
            files.load_tensors(path)


def test_teacher_then_student_end_to_end(tmp_store):
    s = student(control=(teacher(seed=1),))
    res = runs.run(s, progress=False)
    assert store.get(s) == res
    assert store.get(teacher()) is not None and store.get(teacher(seed=1)) is not None
    f = res["final"]
    for key in (
        "accuracy",
        "nll",
        "ece",
        "agreement",
        "kl",
        "control_agreement",
        "train_agreement",
        "top_class_share",
        "eval_train_agreement",
    ):
        assert key in f
    assert 0 < f["eval_train_agreement"] <= 1
    assert 0 < store.get(teacher())["final"]["clean_train_accuracy"] <= 1
    for split, n in (("test", 10_000), ("train", 200)):  # deviations on every image, in fixed bins
        assert (
            sum(res["deviations"][split]["count"]) == n
            and len(res["deviations"][split]["count"]) == 10
        )
    assert res["provenance"]["wall_seconds"] > 0 and res["fingerprint"] == checkpoint.fingerprint()
    assert res["steps"] == s.steps == 12 and res["curves"][-1]["step"] == 12
    assert runs.run(s, store_only=True) == res  # now served from the store
    assert not list((tmp_store / "cache" / "checkpoints").iterdir())  # cleaned up once stored


def test_the_fresh_pass_is_eval_mode_and_leaves_training_alone(tmp_store):
    cpu = torch.device("cpu")
    t = runs.ensemble((teacher(),), cpu, progress=False)
    x, _ = inputs.training_set(student())
    assert (
        finish.fresh_pass_agreement(student(), t, t, x, cpu) == 1.0
    )  # a student that is its teacher
    other = runs.network(teacher(), inputs.new_model(teacher(seed=5)).state_dict(), cpu)
    first = finish.fresh_pass_agreement(student(), other, t, x, cpu)
    assert (
        first < 1.0 and finish.fresh_pass_agreement(student(), other, t, x, cpu) == first
    )  # its own seed
    assert not other.training and not t.training


def test_stale_runs_are_refused_and_other_stacks_flagged(tmp_store):
    t = teacher()
    res = runs.run(t, progress=False)
    old = {**res["fingerprint"], "numerics": checkpoint.NUMERICS - 1}
    store.put(t, {**res, "fingerprint": old})
    with pytest.raises(
        runs.StaleRun,
        match=f"made with training numerics {checkpoint.NUMERICS - 1}.*delete it and rerun",
    ):
        runs.run(t, store_only=True)
    assert runs.stack_note([res]) == ""
    other = {**res, "fingerprint": {**res["fingerprint"], "torch": "2.11.0"}}
    assert "torch 2.11.0" in runs.stack_note([res, other])


def test_teacher_labels_the_exact_augmented_batch(tmp_store, monkeypatch):
    """The teacher sees every batch the student sees, each step anew (no cache across steps)."""
    seen_student, seen_teacher = [], []
    t = runs.ensemble((teacher(),), torch.device("cpu"), progress=False)
    real_forward = type(t).forward
    monkeypatch.setattr(
        type(t),
        "forward",
        lambda self, x: (seen_teacher.append(x.clone()), real_forward(self, x))[1],
    )
    model_cls = type(inputs.new_model(student()))
    real_student = model_cls.forward
    monkeypatch.setattr(
        model_cls,
        "forward",
        lambda self, x: (
            seen_student.append(x.clone()) if self.training else None,
            real_student(self, x),
        )[1],
    )
    cfg = student(epochs=2, augment="crop")
    train.fit(cfg, torch.device("cpu"), t, progress=False)
    steps = cfg.steps  # 2 epochs of 200 images, batch 50
    assert steps == 8
    teacher_train = [x for x in seen_teacher if x.shape[0] == 50]
    assert len(seen_student) == steps and len(teacher_train) == steps
    for a, b in zip(seen_student, teacher_train):
        assert torch.equal(a, b)
    # Each image is cropped anew each epoch: line up its two views (a repeat has odds 1/25 with
    # 2-pixel padding).
    order = torch.cat(list(itertools.islice(inputs.run_indices(cfg, 200), steps)))
    views = torch.cat(seen_student)
    first, second = views[:200][order[:200].argsort()], views[200:][order[200:].argsort()]
    assert (first == second).flatten(1).all(1).float().mean() < 0.2


def test_interpolation_endpoints_layernorm(tmp_store):
    net_cfg = dict(
        dataset="mnist",
        model="preresnet8",
        norm="layer",
        train_size=100,
        epochs=1,
        batch_size=50,
        augment="crop",
        crop_pad=2,
        evals=1,
    )
    t = TeacherConfig(**net_cfg)
    teacher_net = runs.ensemble((t,), torch.device("cpu"), progress=False)
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    for lam, same in ((1.0, True), (0.0, False)):
        s = StudentConfig(**net_cfg, teachers=(t,), init="interpolate", init_lambda=lam)
        model = inputs.new_model(s).to(memory_format=torch.channels_last)  # as in train.fit
        fresh = {k: v.clone() for k, v in model.state_dict().items()}
        inputs.interpolate_(model, teacher_net.members[0], lam)
        model.eval()
        cpu = torch.device("cpu")
        z_s, z_t = (
            predictions.predict(model, x, cpu),
            predictions.predict(teacher_net.members[0], x, cpu),
        )
        assert torch.equal(z_s, z_t) == same
        if not same:
            assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.items())


def test_interpolation_midpoint_and_batchnorm_recomputed():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    inputs.interpolate_(a, b, 0.25)
    assert torch.allclose(a.weight, 0.25 * wb + 0.75 * wa)
    net = inputs.new_model(teacher(model="preresnet8", dataset="cifar10_jpeg"))
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    inputs.recompute_batchnorm(net, x, torch.device("cpu"))
    bn = net.layer1[0].bn1
    # The first BN sees the stem conv's output: its running mean is the mean over all 64 images.
    feats = net.conv1(x.float() / 127.5 - 1)
    assert torch.allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-4)
    assert bn.momentum == 0.1


def test_batches_are_full_and_each_epoch_is_a_permutation():
    stream = inputs.batch_indices(10, 4, seed=3)
    first = [next(stream) for _ in range(5)]  # 20 indices: exactly two epochs
    assert all(len(b) == 4 for b in first)
    flat = torch.cat(first)
    assert sorted(flat[:10].tolist()) == list(range(10)) == sorted(flat[10:].tolist())
    assert not torch.equal(flat[:10], flat[10:])  # a new order each epoch
    resumed = inputs.batch_indices(10, 4, seed=3, start=3)
    assert torch.equal(next(resumed), first[3]) and torch.equal(next(resumed), first[4])


def test_the_union_student_takes_half_of_each_batch_from_each_half():
    cfg = StudentConfig(
        dataset="mnist",
        model="lenet5",
        train_part="D0+D1",
        train_size=6,
        batch_size=4,
        evals=1,
        teachers=(TeacherConfig(dataset="mnist", model="lenet5"),),
    )
    stream = inputs.run_indices(cfg, 12)
    first = [next(stream) for _ in range(6)]  # 12 indices from each half: two epochs of each
    assert all((b[:2] < 6).all() and (b[2:] >= 6).all() for b in first)
    flat = torch.cat([b[:2] for b in first])
    assert sorted(flat[:6].tolist()) == list(range(6)) == sorted(flat[6:].tolist())
    resumed = inputs.run_indices(cfg, 12, start=4)
    assert torch.equal(next(resumed), first[4])
    with pytest.raises(ConfigError, match="batch_size=5: must be even with train_part='D0\\+D1'"):
        StudentConfig(
            dataset="mnist",
            model="lenet5",
            train_part="D0+D1",
            train_size=6,
            batch_size=5,
            evals=1,
            teachers=(TeacherConfig(dataset="mnist", model="lenet5"),),
        )


def test_cosine_schedule_is_per_step():
    assert schedule.cosine_lr(0, 100, 0.1, 1e-6) == 0.1
    assert math.isclose(schedule.cosine_lr(50, 100, 0.1, 0.0), 0.05)
    assert math.isclose(schedule.cosine_lr(100, 100, 0.1, 1e-6), 1e-6)
    lrs = [schedule.cosine_lr(s, 10, 0.1, 0.0) for s in range(10)]
    assert all(b < a for a, b in zip(lrs, lrs[1:]))  # it falls every step, not once per epoch
    assert schedule.eval_steps(10, 4) == {2, 5, 8, 10} and schedule.eval_steps(3, 3) == {1, 2, 3}


def test_a_corrupt_checkpoint_is_discarded_and_the_run_still_finishes(tmp_store, capsys):
    cfg = teacher(epochs=4)
    reference = train.fit(cfg, torch.device("cpu"), progress=False)
    path = checkpoint.path(cfg)
    path.write_bytes(path.read_bytes()[:100])  # torn (a disk fault: a kill cannot do this)
    again = train.fit(cfg, torch.device("cpu"), progress=False)
    assert f"discarding it, {cfg.run_id} restarts from step 0" in capsys.readouterr().out
    assert again.final == reference.final and again.curves == reference.curves
    assert files.load_tensors(path)[0]["step"] == cfg.steps


def test_a_run_resumes_at_its_saved_step_and_only_under_the_same_numerics(
    tmp_store, monkeypatch, capsys
):
    cfg = teacher(epochs=4)
    reference = train.fit(
        cfg, torch.device("cpu"), progress=False
    )  # leaves its checkpoint at the last step
    steps = []
    real_step = torch.optim.SGD.step
    monkeypatch.setattr(
        torch.optim.SGD, "step", lambda self, *a, **k: (steps.append(1), real_step(self, *a, **k))
    )
    again = train.fit(cfg, torch.device("cpu"), progress=False)
    assert (
        steps == [] and again.final == reference.final
    )  # resumed at the end: not one step retaken
    monkeypatch.setattr(checkpoint, "NUMERICS", checkpoint.NUMERICS + 1)
    train.fit(cfg, torch.device("cpu"), progress=False)
    assert (
        "not by this code" in capsys.readouterr().out and len(steps) == cfg.steps
    )  # another numerics: restarted


def test_cpu_time_excludes_a_pause_that_wall_time_counts_and_survives_a_resume(
    tmp_store, monkeypatch
):
    import time

    cfg, pause = teacher(epochs=4), 1.5
    real_step, paused = torch.optim.SGD.step, []

    def step(self, *a, **k):  # one pause mid-run, as a stopped (SIGSTOP) process sees it
        if not paused:
            paused.append(time.sleep(pause))
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    first = train.fit(cfg, torch.device("cpu"), progress=False)
    assert first.seconds >= pause and 0 < first.cpu_seconds
    # CPU time counts the threads' work only: at most every thread busy outside the pause
    assert first.cpu_seconds <= torch.get_num_threads() * (first.seconds - pause) + 0.5
    # resumed from its last checkpoint (the last step), a run goes on from both saved clocks
    saved = files.load_tensors(checkpoint.path(cfg))[0]
    # a run reports its clocks rounded to 0.01 s: compare with the saved ones rounded alike
    assert pause <= saved["elapsed"] and round(saved["elapsed"], 2) <= first.seconds
    assert 0 < saved["cpu"] and round(saved["cpu"], 2) <= first.cpu_seconds
    again = train.fit(cfg, torch.device("cpu"), progress=False)
    assert again.seconds >= round(saved["elapsed"], 2)
    assert again.cpu_seconds >= round(saved["cpu"], 2)


@pytest.mark.parametrize(
    "name,profile", [(n, p) for n in sorted(chapters.CHAPTERS) for p in chapters.profiles(n)]
)
def test_plans_are_well_formed(name, profile):
    p = chapters.plan(name, profile)
    roles = [labels["role"] for labels, _ in p.rows]
    assert roles == sorted(roles, key=lambda r: r != "teacher")  # teachers come first
    ids = [c.run_id for c in p.configs]
    assert len(ids) == len(set(ids))
    students = plan.students_of(p)
    for cfg in students:
        assert all(t in p.configs for t in cfg.teachers + cfg.control)
        assert not set(cfg.teachers) & set(cfg.control)  # controls are independent
    # every student of a chapter's comparisons takes exactly the same number of optimizer steps
    # (chapter 6 compares within each chapter it reads from, its `source`; chapter 7 varies training
    # length, its `duration`, on purpose, and a length control's 2x arm, its `length`)
    steps = {}
    for labels, cfg in p.rows:
        if labels["role"] == "student":
            steps.setdefault(
                (labels.get("source"), labels.get("duration"), labels.get("length")), set()
            ).add(cfg.steps)
    assert all(len(s) == 1 for s in steps.values())
    # the trials of one condition never share a teacher, so their spread is not understated
    by_condition = {}
    for labels, cfg in p.rows:
        if labels["role"] == "student":
            condition = tuple(sorted((k, v) for k, v in labels.items() if k != "trial"))
            by_condition.setdefault(condition, []).extend(cfg.teachers)
    for members in by_condition.values():
        assert len(members) == len(set(members))
    # every "random" student starts apart from its teachers' initial weights
    assert not [
        c.describe() for c in students if c.init != "shared" and plan.starts_at_teacher_init(c)
    ]


def test_a_smaller_profile_overrides_the_papers_table_key_by_key():
    """`plan.recipe`: sub-tables merge key by key, any other value is replaced whole (a mapping
    keyed by m too), and a key the paper's table lacks, a misspelling, is refused in one line."""
    paper = dict(
        seeds=(0, 1, 2),
        taus={1: (1.0, 4.0), 3: (1.0, 4.0)},
        teacher=dict(epochs=200, batch=256, lr=0.1),
        student=dict(images=15_000_000, lr=0.05),
    )
    r = plan.recipe(paper, budget=dict(taus={3: (4.0,)}, teacher=dict(epochs=10)))
    assert r["paper"] is paper and paper["teacher"]["epochs"] == 200
    assert r["budget"] == dict(
        seeds=(0, 1, 2),
        taus={3: (4.0,)},
        teacher=dict(epochs=10, batch=256, lr=0.1),
        student=dict(images=15_000_000, lr=0.05),
    )
    with pytest.raises(
        ConfigError,
        match=r"^smoke\.teacher: 'epoch' is not a key of the table it overrides; expected one of "
        r"\['batch', 'epochs', 'lr'\]$",
    ):
        plan.recipe(paper, smoke=dict(teacher=dict(epoch=12)))
    with pytest.raises(ConfigError, match="^gpu: 'model' is not a key"):
        plan.recipe(paper, gpu=dict(model="preresnet20"))


def test_lenet_plan_distillation_sets_contain_teacher_set():
    s = plan.students_of(chapters.plan("lenet_mnist", "budget"))
    assert {c.steps for c in s} == {600_000 // 128, 2 * 600_000 // 128}  # with the length control
    _, labels = data.load("mnist", "train")
    for c in s:
        t_idx = set(
            data.subset(labels, c.teachers[0].train_size, "all", c.teachers[0].subset_seed).tolist()
        )
        s_idx = set(data.subset(labels, c.train_size, "all", c.subset_seed).tolist())
        assert t_idx <= s_idx


def test_lenet_paper_plan_adds_figure_2s_emnist_sets_at_equal_steps():
    main, replication = chapters.plans("lenet_mnist", "paper")
    s = plan.students_of(main)
    assert {c.steps for c in s} == {300 * 60_000 // 128}  # every set, EMNIST ones too
    emnist = [c for c in s if c.ood_dataset == "emnist"]
    # the teacher's 200 MNIST images beside 179,800 / 359,800 / 599,800 EMNIST ones, per trial
    assert sorted({(c.train_size, c.examples, c.epochs) for c in emnist}) == [
        (200, 180_000, 100),
        (200, 360_000, 50),
        (200, 600_000, 30),
    ]
    assert len(emnist) == 3 * 3 and all(c.train_size == c.teachers[0].train_size for c in emnist)
    # the replication's two sets are the smallest and the largest, EMNIST's
    sizes = {lab["distill_size"] for lab, c in replication.rows if lab["role"] == "student"}
    assert sizes == {200, 600_000}
    # no EMNIST where there is no internet: the budget plan is MNIST alone
    assert not any(c.ood_dataset for c in plan.students_of(chapters.plan("lenet_mnist", "budget")))


def test_out_of_distribution_images_join_the_distillation_set():
    s = student(ood_dataset="cifar10_jpeg", ood_size=50)
    x, y = inputs.training_set(s)
    assert x.shape == (250, 1, 28, 28) and x.dtype == torch.uint8
    assert (y[:200] >= 0).all() and (y[200:] == -1).all()
    with pytest.raises(ValueError, match="ood_size=0: must be > 0 exactly when ood_dataset is set"):
        student(ood_dataset="cifar10_jpeg")
    with pytest.raises(ValueError, match="alpha=0.5: must be 0 with ood_dataset"):
        student(ood_dataset="cifar10_jpeg", ood_size=5, alpha=0.5)
    with pytest.raises(
        ValueError, match="ood_size=50001: must be at most the size of cifar10_jpeg"
    ):
        student(ood_dataset="cifar10_jpeg", ood_size=50_001)
    # images of the run's shape join unchanged (Fig. 2's EMNIST sets): no resampling round trip
    x, y = inputs.training_set(student(ood_dataset="mnist", ood_size=50))
    mx, my = data.load("mnist", "train")
    assert torch.equal(x[200:], mx[data.subset(my, 50, "all", student().subset_seed)])
    assert (y[200:] == -1).all()


def test_later_options_are_hashed_only_when_set():
    assert "ood_dataset" not in student().to_dict() and "test_size" not in student().to_dict()
    assert student(ood_dataset="cifar10_jpeg", ood_size=5).run_id != student().run_id
    assert student(test_size=100).run_id != student().run_id


def test_augmentation_plan_shares_chapter_3_runs_and_adds_stand_ins():
    from kdrepro.chapters import augmentation, self_vs_ensemble

    aug, sve = chapters.plan("augmentation", "gpu"), chapters.plan("self_vs_ensemble", "gpu")
    shared = {c.run_id for c in aug.configs} & {c.run_id for c in sve.configs}
    assert {c.run_id for c in self_vs_ensemble.teacher_pool("gpu")} <= shared
    # the stand-ins, at smoke (the budget recipe cuts them)
    by_policy = {
        labels["policy"]: c
        for labels, c in chapters.plan("augmentation", "smoke").rows
        if labels.get("trial") == 0 and labels.get("length") == 1
    }
    assert {"extra_t4", "ood", "noise", "combined"} <= set(by_policy) <= set(augmentation.POLICIES)
    assert by_policy["extra_t4"].train_size == 2_000 and by_policy["extra_t4"].temperature == 4.0
    assert (by_policy["ood"].ood_dataset, by_policy["ood"].examples) == ("fashion_mnist", 2_000)
    assert by_policy["mixup_t4"].augment == "mixup" and by_policy["noise"].augment == "noise"
    assert all(len(c.teachers) == 1 for c in by_policy.values())
    # at paper scale there are no unseen real images (teachers use all 50k): the stand-in policy is
    # dropped
    paper = chapters.plan("augmentation", "paper")
    assert "extra_t4" not in {labels.get("policy") for labels, _ in paper.rows}
    assert {labels["arch"] for labels, _ in paper.rows} == {"preresnet56", "vgg16"}
    with pytest.raises(ValueError, match="too small for 4 disjoint 5-teacher ensembles"):
        self_vs_ensemble.ensembles(self_vs_ensemble.teacher_pool("budget"), 5, 4)
    # Fig. 13's runs where a profile cuts them (their cost is the book's reason): the plan's own
    # VGG-16 runs where it does not
    vgg = [c for labels, c in paper.rows if labels["arch"] == "vgg16"]
    assert augmentation.fig13_configs("paper") == vgg
    cut = augmentation.fig13_configs("budget")
    teachers = [c for c in cut if c.kind == "teacher"]
    assert {c.model for c in cut} == {"vgg16"} and len(teachers) == 15 and len(cut) == 15 + 3 * 6
    assert {len(c.teachers) for c in cut if c.kind == "student"} == {5}
    assert not {c.run_id for c in cut} & {c.run_id for c in chapters.plan("augmentation").configs}


def test_augmentation_budget_plan_is_chapter_3s_converged_recipe_with_a_length_control():
    """Chapter 4 at budget: chapter 3's converged teachers (200 epochs at batch 256), students at 3x
    their steps from init seeds of their own, 5 trials of disjoint 3-teacher ensembles, Baseline
    students that are chapter 3's m = 3 students, and Baseline at 2x paired with each trial's 1x."""
    from kdrepro.chapters import self_vs_ensemble

    aug, sve = chapters.plan("augmentation", "budget"), chapters.plan("self_vs_ensemble", "budget")
    teachers = [c for c in aug.configs if c.kind == "teacher"]
    pool = self_vs_ensemble.teacher_pool("budget")
    assert {c.run_id for c in teachers} == {c.run_id for c in pool}
    assert {(c.train_size, c.epochs, c.batch_size, c.steps) for c in teachers} == {
        (2_000, 200, 256, 1_562)
    }
    students = [(labels, c) for labels, c in aug.rows if labels["role"] == "student"]
    main = [(labels, c) for labels, c in students if labels["length"] == 1]
    assert {labels["policy"] for labels, _ in main} == {
        "baseline",
        "baseline_t4",
        "mixup",
        "mixup_t4",
    }
    assert {(c.steps, c.batch_size) for _, c in main} == {(4_687, 128)}  # 600k images of steps
    assert {round(c.steps / c.teachers[0].steps, 2) for _, c in main} == {3.0}  # whole batches
    assert {labels["trial"] for labels, _ in main} == set(range(5))
    assert {len(c.teachers) for _, c in main} == {3}
    assert all(c.init_seed == plan.fresh_init(c.seed) for _, c in students)
    assert all(not set(c.teachers) & set(c.control) for _, c in students)
    ch3 = {c.run_id for c in sve.configs}
    assert {labels["policy"] for labels, c in students if c.run_id in ch3} == {"baseline"}
    assert sum(c.run_id in ch3 for _, c in main) == 5
    long_ = {labels["trial"]: c for labels, c in students if labels["length"] == 2}
    assert set(long_) == set(range(5)) and {c.steps for c in long_.values()} == {9_375}
    base = {labels["trial"]: c for labels, c in main if labels["policy"] == "baseline"}
    assert all(replace(c, epochs=c.epochs // 2) == base[t] for t, c in long_.items())  # paired


def test_a_fresh_init_is_apart_from_the_teacher_and_shared_is_the_teachers():
    """With the trial's own seed a student would start from its same-seed teacher's initial weights;
    `init_seed` (plan.fresh_init) keeps them apart, colliding with a teacher's seed is refused, and
    init='shared' is exact."""

    def first(cfg):
        return next(iter(inputs.new_model(cfg).state_dict().values()))

    t = teacher()
    assert torch.equal(
        first(student()), first(t)
    )  # the stored runs of chapters 2-4: the same seed, the same start
    assert plan.starts_at_teacher_init(student()) and not plan.starts_at_teacher_init(
        student(seed=1)
    )
    assert plan.starts_at_teacher_init(
        student(seed=1, control=(teacher(seed=1),))
    )  # its control's start
    fresh = student(init_seed=plan.fresh_init(0))
    assert fresh.init_seed_used == plan.FRESH_INIT and not torch.equal(first(fresh), first(t))
    shared = student(seed=7, init="shared")
    assert shared.init_seed_used == t.seed and torch.equal(first(shared), first(t))
    assert plan.starts_at_teacher_init(shared) and not plan.starts_at_teacher_init(fresh)
    with pytest.raises(
        ConfigError,
        match=r"init_seed=0: equals a same-architecture teacher.s \(or control.s\) seed",
    ):
        student(init_seed=0)
    with pytest.raises(ConfigError, match="init_seed=3: must be None with init='shared'"):
        student(init="shared", init_seed=3)
    assert "init_seed" not in student().to_dict() and fresh.run_id != student().run_id


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_a_student_stuck_at_the_uniform_output_fails_loudly(alpha):
    """The uniform output's loss is alpha ln K + (1 - alpha) tau^2 ln K; a student sitting there
    learned nothing."""
    cfg = student(temperature=4.0, alpha=alpha)
    stuck = (alpha + (1 - alpha) * 16) * math.log(10)
    with pytest.raises(
        errors.TrainingFailed, match=f"loss stayed at {stuck:.2f}, a uniform output's; lower lr"
    ):
        finish.check_learned(cfg, {"train_loss": stuck, "agreement": 0.1})
    finish.check_learned(
        cfg, {"train_loss": stuck * 0.9, "agreement": 0.1}
    )  # moving: no verdict yet
    finish.check_learned(cfg, {"train_loss": stuck, "agreement": 0.5})  # agrees: learned something


def test_chapter_5s_budget_plan_teachers_fit_students_take_3x_and_a_length_control():
    p = chapters.plan("recycling", "budget")
    teachers = [c for c in p.configs if c.kind == "teacher"]
    # 300 epochs, not chapter 3's 200 (at 200, one of the first eight missed the fit rule)
    assert {(c.train_part, c.train_size, c.epochs, c.batch_size) for c in teachers} == {
        ("D0", 2_000, 300, 256)
    } and len(teachers) == 9
    assert p.settings["teachers"]["teacher"]["epochs"] == 300
    students = [(labels, c) for labels, c in p.rows if labels["role"] == "student"]
    short = [c for labels, c in students if labels["length"] == 1]
    # 3x the teachers' steps (7,031 against 2,343, whole batches), the same for every split: s0∪1
    # distills on twice the images, so it takes half the epochs
    assert {c.steps for c in short} == {7_031} and {
        c.steps / c.teachers[0].steps for c in short
    } == {7_031 / 2_343}
    assert {(c.train_part, c.epochs) for c in short} == {("D0", 450), ("D1", 450), ("D0+D1", 225)}
    # Fig. 9's grid on s0 is whole over the m and tau run: m = 1, 3 x tau = 1, 4, 8, 3 trials each
    grid = [(lb["m"], lb["tau"]) for lb, _ in students if lb["split"] == "s0" and lb["length"] == 1]
    assert sorted(set(grid)) == [(m, t) for m in (1, 3) for t in (1.0, 4.0, 8.0)]
    assert all(grid.count(cell) == 3 for cell in set(grid)) and len(students) == 27
    # the length control: s0 at m = 3, tau = 4, at 2x the steps, in every trial, beside its 1x twin
    long = [(labels, c) for labels, c in students if labels["length"] != 1]
    assert {
        (labels["split"], labels["m"], labels["tau"], labels["length"]) for labels, _ in long
    } == {("s0", 3, 4.0, 2)}
    assert sorted(labels["trial"] for labels, _ in long) == list(p.settings["seeds"]) == [0, 1, 2]
    for _, c in long:
        twin = replace(c, epochs=c.epochs // 2)
        assert twin in short and c.steps - 2 * twin.steps in (0, 1)
    # chapter 6 reads the 1x students only
    read = [
        labels
        for labels, _ in chapters.plan("train_agreement", "budget").rows
        if labels.get("source") == "split" and labels["role"] == "student"
    ]
    assert len(read) == len(short) and {labels["length"] for labels in read} == {1}


@pytest.mark.parametrize(
    "name", [n for n in sorted(chapters.CHAPTERS) if n != "train_agreement"]
)  # chapter 6 has no runs of its own
def test_budget_recipes_keep_the_papers_relative_lengths(name):
    """At budget, teachers train the paper's 200 epochs at batch 256 on 2k images (chapter 7's
    LayerNorm teachers, which fit 500 images but not 2k, as many steps; chapter 2's LeNet-5 teachers
    the paper's 100 epochs on 200 images; chapter 5's D0 teachers 300 epochs: at 200, one of its
    first eight missed the fit rule); students of the comparisons take 3x their teachers'
    optimizer steps (the paper: 300 epochs at batch 128 against 200 at 256; chapter 2's students,
    whose length the paper does not state, 600k images on every set); the key condition also runs at
    2x."""
    p = chapters.plan(name, "budget")
    teachers = [c for c in p.configs if c.kind == "teacher"]
    if name == "lenet_mnist":
        assert {(c.train_size, c.epochs, c.batch_size, c.steps) for c in teachers} == {
            (200, 100, 64, 312)
        }
    elif name == "optimization":
        assert {(c.norm, c.train_size, c.epochs, c.batch_size, c.steps) for c in teachers} == {
            ("layer", 500, 400, 128, 1562)
        }
    elif name in ("recycling", "deviations"):  # chapter 5's D0 teachers take 300 epochs
        assert {(c.epochs, c.batch_size, c.steps) for c in teachers if c.train_part == "D0"} == {
            (300, 256, 2343)
        }
    else:
        assert {(c.epochs, c.batch_size, c.steps) for c in teachers} == {(200, 256, 1562)}
    ratios, doubled = set(), []
    for labels, cfg in p.rows:
        if (
            labels["role"] != "student" or labels.get("duration", 1) != 1
        ):  # chapter 7's Fig. 6a: length varies
            continue
        if labels.get("length", 1) == 2:
            doubled.append(cfg)
        else:
            ratios.add(round(cfg.steps / cfg.teachers[0].steps, 2))
    assert ratios == ({15.02} if name == "lenet_mnist" else {3.0})
    if (
        name == "deviations"
    ):  # its late-switch arms run at 1x only (their cost; the chapter says so)
        return
    assert doubled
    # each 2x student has its 1x twin: the same config (trial, teachers, set) at half the epochs
    # (chapter 7's twin also draws a loss plane)
    configs = {replace(c, surface=0).run_id: c for c in p.configs if c.kind == "student"}
    for c in doubled:
        assert (
            abs(c.steps - 2 * configs[replace(c, epochs=c.epochs // 2).run_id].steps) <= 1
        )  # whole batches


def test_chapter_3s_replication_draws_another_subset_other_teachers_and_other_students():
    from kdrepro.chapters import self_vs_ensemble as sve

    main, rep = sve.plans("budget")
    teachers = {c.run_id for c in rep.configs if c.kind == "teacher"}
    assert teachers.isdisjoint(c.run_id for c in main.configs)
    assert {(c.subset_seed, c.train_size) for c in rep.configs} == {
        (1, 2_000)
    }  # students on their teachers' set
    students = [(labels, c) for labels, c in rep.rows if labels["role"] == "student"]
    assert sorted((labels["m"], labels["trial"]) for labels, _ in students) == [
        (m, t) for m in (1, 3) for t in (100, 101, 102)
    ]
    for _, c in students:
        assert not {t.run_id for t in c.teachers} & {t.run_id for t in c.control}
        assert round(c.steps / c.teachers[0].steps, 2) == 3.0  # whole batches
    with pytest.raises(ConfigError, match="no fresh-seed replication"):
        sve.plan("paper", replication=True)


def test_a_log_gets_a_line_per_evaluation_with_the_time_left(tmp_store, capsys):
    cfg = teacher(evals=3)
    line = train.progress_line(cfg, 6, (2, 100.0), {"accuracy": 0.5, "agreement": 0.25}, now=160.0)
    # 4 steps in a minute, 6 of 12 left: 1.5 minutes at that rate
    assert line == (
        f"teacher {cfg.run_id}: step 6 of 12 (50 %), 1.0 min since it started here, about 1.5 min "
        "left; accuracy 0.500, agreement 0.250"
    )
    train.fit(cfg, torch.device("cpu"), progress=True)  # pytest's stderr is a log, not a terminal
    err = capsys.readouterr().err.splitlines()
    assert [e.split(" (")[0] for e in err if e.startswith(f"teacher {cfg.run_id}: step")] == [
        f"teacher {cfg.run_id}: step {s} of 12" for s in (4, 8, 12)
    ]
