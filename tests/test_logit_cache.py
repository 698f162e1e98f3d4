"""Teacher-logit caching under crop (+ flip): the cache is the online teacher on every view, a
student distilled from it takes the same steps, students of one ensemble and set share one verified
file, and only runs that pass over their set more often than it has views use one."""

from dataclasses import replace

import pytest
import torch

from kdrepro import (
    augment,
    chapters,
    checkpoint,
    compute,
    files,
    logit_cache,
    models,
    packed,
    plan,
    predictions,
    runs,
    train,
)
from kdrepro.config import StudentConfig, TeacherConfig

# float32 on the CPU: a view's logits differ in the last bits with the batch it is in (2.4e-7 seen)
TOLERANCE = 1e-6


@pytest.mark.parametrize(
    "model, policy, pad, shape",
    [("preresnet8", "crop_flip", 4, (3, 32, 32)), ("lenet5", "crop", 2, (1, 28, 28))],
)
def test_the_cache_is_the_online_teacher_on_every_view(model, policy, pad, shape):
    torch.manual_seed(0)
    members = [models.build(model, 10, in_channels=shape[0], image_size=shape[1]) for _ in range(2)]
    teacher = models.Ensemble(members).eval()
    x = torch.randint(
        0, 256, (5, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    device = torch.device("cpu")
    cache = logit_cache.build(
        lambda xb: predictions.label_batch(teacher, xb, device),
        x,
        policy,
        pad,
        device,
        batch_size=2,
    )
    views = augment.view_count(policy, pad)
    assert cache.shape == (5, views, 10) and cache.dtype == torch.float32
    for v in range(
        views
    ):  # the online path: the view drawn inside a batch of other images, labelled at once
        xb = augment.at_views(x, policy, pad, torch.full((5,), v)).contiguous(
            memory_format=torch.channels_last
        )
        torch.testing.assert_close(
            cache[:, v],
            predictions.label_batch(teacher, xb, device),
            rtol=TOLERANCE,
            atol=TOLERANCE,
        )


def _tiny() -> tuple[TeacherConfig, StudentConfig]:
    common = dict(
        dataset="mnist",
        model="lenet5",
        train_size=64,
        batch_size=32,
        lr=0.05,
        augment="crop",
        crop_pad=2,
        test_size=200,
    )
    t = TeacherConfig(**common, epochs=5, evals=1)
    # 40 passes over 64 images against 25 crop views: the cache pays
    return t, StudentConfig(
        **common, epochs=40, evals=2, teachers=(t,), temperature=2.0, init_seed=plan.fresh_init(0)
    )


def test_a_student_from_the_cache_takes_the_online_steps(tmp_store, monkeypatch):
    t, s = _tiny()
    assert logit_cache.pays(s)
    cached = runs.run(s, progress=False)
    assert cached["provenance"]["cached_teacher"] is True
    assert len(list((tmp_store / "cache" / "logits").glob("*.pt"))) == 1
    teacher = runs.ensemble((t,), torch.device("cpu"), progress=False)
    monkeypatch.setattr(logit_cache, "pays", lambda cfg: False)
    online = train.fit(s, torch.device("cpu"), teacher, progress=False)
    assert not online.cached_teacher
    for a, b in zip(cached["curves"], online.curves, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    weights = runs.ensemble(
        (t,), torch.device("cpu"), progress=False
    )  # same teacher: nothing retrained
    assert torch.equal(next(weights.parameters()), next(teacher.parameters()))


def test_students_of_one_ensemble_and_set_share_one_cache_file(tmp_store, monkeypatch):
    t, s = _tiny()
    first = runs.run(s, progress=False)
    (path,) = (tmp_store / "cache" / "logits").glob("*.pt")
    built = []
    with monkeypatch.context() as m:
        m.setattr(logit_cache, "build", lambda *a, **k: built.append(1))
        longer = runs.run(
            replace(s, epochs=2 * s.epochs), progress=False
        )  # the length control's 2x student
    assert not built and longer["provenance"]["cached_teacher"] is True
    assert longer["curves"][0]["step"] == 2 * first["curves"][0]["step"]
    runs.run(
        replace(s, train_size=32, epochs=80), progress=False
    )  # another distillation set: another cache
    assert len(list((tmp_store / "cache" / "logits").glob("*.pt"))) == 2
    assert path.exists()


def test_a_corrupt_cache_file_is_rebuilt_with_a_warning_and_the_same_numbers(tmp_store, capsys):
    t, s = _tiny()
    teacher = runs.ensemble((t,), torch.device("cpu"), progress=False)
    first = train.fit(s, torch.device("cpu"), teacher, progress=False)
    (path,) = (tmp_store / "cache" / "logits").glob("*.pt")
    path.write_bytes(path.read_bytes()[:-100])
    again = train.fit(s, torch.device("cpu"), teacher, progress=False)
    assert "rebuilding the logit cache" in capsys.readouterr().err
    assert again.curves == first.curves and files.load_tensors(path)[1]


def test_the_cache_key_changes_with_teachers_images_and_policy():
    torch.manual_seed(0)
    nets = [models.build("lenet5", 10, in_channels=1, image_size=28) for _ in range(2)]
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    stamp = checkpoint.fingerprint()
    keys = {
        logit_cache.key(nets[0], x, "crop", 2, "cpu", stamp),
        logit_cache.key(nets[1], x, "crop", 2, "cpu", stamp),
        logit_cache.key(nets[0], x[:3], "crop", 2, "cpu", stamp),
        logit_cache.key(nets[0], x, "crop_flip", 2, "cpu", stamp),
        logit_cache.key(nets[0], x, "crop", 2, "cuda", stamp),
        logit_cache.key(nets[0], x, "crop", 2, "cpu", {**stamp, "numerics": -1}),
    }
    assert len(keys) == 6
    assert logit_cache.key(nets[0], x, "crop", 2, "cpu", stamp) == logit_cache.key(
        nets[0], x.clone(), "crop", 2, "cpu", stamp
    )


def test_only_runs_with_more_passes_than_views_use_the_cache(monkeypatch):
    def paying(name, profile):
        return {logit_cache.pays(c) for c in plan.students_of(chapters.plan(name, profile))}

    assert paying("self_vs_ensemble", "paper") == {True}  # 300 epochs against 162 views
    assert paying("self_vs_ensemble", "gpu") == {False}  # 15 epochs
    assert paying("augmentation", "paper") == {True, False}  # crop + flip policies only
    # budget: 300 epochs of the teachers' 2k images pay; 150 of 4k and 100 of 6k do not (unless 2x
    # long)
    budget = {
        (c.examples, c.epochs): logit_cache.pays(c)
        for c in plan.students_of(chapters.plan("self_vs_ensemble", "budget"))
    }
    assert budget == {
        (2_000, 300): True,
        (2_000, 600): True,
        (4_000, 150): False,
        (6_000, 100): False,
    }
    _, s = _tiny()
    assert not logit_cache.pays(replace(s, epochs=25))  # 25 passes, 25 views: no saving
    monkeypatch.setattr(logit_cache, "MAX_BYTES", 64 * 25 * 10 * 4 - 1)
    assert not logit_cache.pays(s)  # too large


def test_a_student_that_would_use_the_cache_is_not_packed():
    student = plan.students_of(chapters.plan("self_vs_ensemble", "paper"))[0]
    assert "logit cache" in packed.unpackable(student, "cuda")


def test_the_estimate_counts_each_view_once_per_shared_cache(tmp_path):
    _, s = _tiny()
    f = compute.forward_flops("lenet5", "mnist")
    online = (s.steps * s.batch_size) * f
    assert compute.run_flops(s) == compute.run_flops(s, cache_built=True) + s.examples * 25 * f
    longer = replace(s, epochs=2 * s.epochs)
    with_cache = compute.run_flops(s) + compute.run_flops(longer, cache_built=True)
    assert compute.h100_seconds([s, longer]) == pytest.approx(
        with_cache
        / compute.h100_seconds.__globals__["H100_PRERESNET20"]
        / (1 + compute.BACKWARD)
        / compute.forward_flops("preresnet20", "cifar10_jpeg")
    )
    assert online > s.examples * 25 * f
