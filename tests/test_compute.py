"""Time estimates: exact FLOP counts, estimates that match the stored runs' measured wall time, and
a clear line when a device was never benchmarked."""

import json
import re
import statistics
from dataclasses import replace

import pandas as pd
import pytest

from kdrepro import chapters, checkpoint, compute, costs, logit_cache, packed, runs, store
from kdrepro.config import StudentConfig, TeacherConfig
from kdrepro.errors import ConfigError


def test_lenet5_forward_flops_are_its_multiply_adds_twice():
    macs = (
        6 * 28 * 28 * 25  # conv 1 -> 6, 5x5, padding 2: 28x28 outputs
        + 16 * 10 * 10 * 6 * 25  # conv 6 -> 16, 5x5 on 14x14: 10x10 outputs
        + 400 * 120
        + 120 * 84
        + 84 * 10
    )
    assert compute.forward_flops("lenet5", "mnist") == 2 * macs


def test_a_student_costs_its_training_plus_its_teachers_forward_passes():
    t = TeacherConfig(
        dataset="mnist", model="lenet5", epochs=1, train_size=1_000, batch_size=100, evals=1
    )
    s = StudentConfig(
        dataset="mnist",
        model="lenet5",
        epochs=1,
        train_size=1_000,
        batch_size=100,
        evals=1,
        teachers=(t, replace(t, seed=1)),
        control=(replace(t, seed=2),),
        init_seed=9,
    )
    f = compute.forward_flops("lenet5", "mnist")
    assert compute.run_flops(t) == 1_000 * 3 * f + 10_000 * f
    assert compute.run_flops(s) == 1_000 * (3 + 2) * f + 10_000 * (1 + 2 + 1) * f


def _bench(root, device: str, case: str, speed: float) -> None:
    (root / "bench").mkdir(parents=True, exist_ok=True)
    (root / "bench" / f"{device}-test.json").write_text(
        json.dumps({"results": [{"case": case, "kdrepro": speed}]})
    )


def test_a_compiled_benchmark_sizes_compiled_runs_only(tmp_path, monkeypatch):
    _bench(tmp_path, "cpu", "lenet5", 1_000.0)
    fast = json.dumps(
        {"provenance": {"compiled": True}, "results": [{"case": "lenet5", "kdrepro": 4_000.0}]}
    )
    (tmp_path / "bench" / "cpu-compiled.json").write_text(fast)
    t = TeacherConfig(
        dataset="mnist", model="lenet5", epochs=2, train_size=1_000, batch_size=100, evals=1
    )
    plain = compute.estimate([t], "cpu", tmp_path)
    monkeypatch.setenv("KDREPRO_COMPILE", "1")
    compiled = compute.estimate([t], "cpu", tmp_path)
    assert plain[1] == ["lenet5 in cpu-test.json"] and compiled[1] == [
        "lenet5 in cpu-compiled.json"
    ]
    assert plain[0] == pytest.approx(4 * compiled[0])


def test_an_estimate_is_work_over_the_benchmarked_rate(tmp_path):
    _bench(tmp_path, "cpu", "lenet5", 1_000.0)
    t = TeacherConfig(
        dataset="mnist", model="lenet5", epochs=2, train_size=1_000, batch_size=100, evals=1
    )
    seconds, sources = compute.estimate([t, t], "cpu", tmp_path)
    # 2 runs x (2,000 training images + a third of 10,000 test images, counted as training-step
    # equivalents)
    assert seconds == pytest.approx(2 * (2_000 + 10_000 / 3) / 1_000)
    assert sources == ["lenet5 in cpu-test.json"]


def test_a_packed_estimate_costs_what_packs_can_take_at_the_packed_rate(tmp_path):
    """With --pack, a teacher is costed at the benchmark's packed rate and a student whose labels
    come from a logit cache (which packs do not build) at the single-network rate; without a packed
    row, the line says the runs go one after another."""
    bench = {"results": [{"case": "lenet5", "kdrepro": 1_000.0, "pack": 8, "packed": 4_000.0}]}
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "cuda-test.json").write_text(json.dumps(bench))
    t = TeacherConfig(
        dataset="mnist",
        model="lenet5",
        epochs=2,
        train_size=1_000,
        batch_size=100,
        evals=1,
        augment="crop",
        crop_pad=2,
    )
    # 27 passes over 25 crop views: its labels come from a logit cache
    cached = StudentConfig(**{**t.__dict__, "epochs": 27, "teachers": (t,), "init_seed": 9})
    assert packed.unpackable(t, "cuda") is None and packed.unpackable(cached, "cuda")
    one = compute.estimate([t], "cuda", tmp_path)[0]
    assert compute.estimate([t], "cuda", tmp_path, pack=4) == (
        pytest.approx(one / 4),
        ["lenet5 packed in cuda-test.json"],
    )
    both = compute.estimate([t, cached], "cuda", tmp_path, pack=4)
    assert both[0] == pytest.approx(one / 4 + compute.estimate([cached], "cuda", tmp_path)[0])
    assert both[1] == ["lenet5 in cuda-test.json", "lenet5 packed in cuda-test.json"]
    _bench(tmp_path, "cuda", "lenet5", 1_000.0)  # the same file, without its packed row
    compute._benchmarks.cache_clear()
    line = compute.estimate_line([t], "cuda", tmp_path, pack=4)
    assert line.endswith("no packed benchmark, so one run after another: packs should be faster)")


def test_without_a_benchmark_the_line_says_how_to_get_one(tmp_path):
    t = TeacherConfig(
        dataset="mnist", model="lenet5", epochs=1, train_size=1_000, batch_size=100, evals=1
    )
    assert compute.estimate([t], "cuda", tmp_path) is None
    line = compute.estimate_line([t], "cuda", tmp_path)
    assert (
        "no cuda benchmark" in line
        and "python -m kdrepro.bench --device cuda" in line
        and "\n" not in line
    )


def _first_planned_by(name: str) -> list:
    """The budget configs of chapter `name` that no earlier chapter of the book plans: a run
    shared by config is judged once, where the book first trains it."""
    earlier = set()
    for other, _ in chapters.BOOK:
        configs = [c for plan in chapters.plans(other, "budget") for c in plan.configs]
        if other == name:
            return [c for c in dict.fromkeys(configs) if c.run_id not in earlier]
        earlier |= {c.run_id for c in configs}
    raise AssertionError(f"{name} is not in the book")


@pytest.mark.parametrize("name", chapters.PUBLISHED)
def test_estimates_match_the_stored_runs_wall_time(name):
    """The committed CPU benchmark predicts every published chapter's stored CPU runs to within a
    factor of 2 (median over the runs it is the first chapter to plan): what the book's
    paper-scale costs rest on. A run is measured by its CPU time over its threads where it
    recorded one, since its wall time also counts the pauses of a sweep stopped for CI or a
    benchmark; else by its wall time."""
    mine = _first_planned_by(name)
    if not mine:
        pytest.skip(f"{name} trains no run of its own: it reads earlier chapters' runs")
    ratios = []
    for cfg in mine:
        result = store.get(cfg)
        if result is not None and result["provenance"]["device"] == "cpu":
            p = result["provenance"]
            cpu = p.get("cpu_seconds")
            took = cpu / p["threads"] if cpu else p["wall_seconds"]
            ratios.append(compute.estimate([cfg], "cpu")[0] / took)
    assert ratios, f"{name}: no stored CPU runs"
    assert 0.5 <= statistics.median(ratios) <= 2.0, (
        f"{name}: estimate / measured = {statistics.median(ratios):.2f}"
    )


def test_a_run_shared_by_config_is_judged_in_the_first_chapter_that_plans_it():
    mine = {c.run_id for c in _first_planned_by("augmentation")}
    ch3 = {c.run_id for plan in chapters.plans("self_vs_ensemble", "budget") for c in plan.configs}
    aug = {c.run_id for plan in chapters.plans("augmentation", "budget") for c in plan.configs}
    assert aug & ch3 and mine == aug - ch3  # chapter 3's teachers and Baseline students
    assert not _first_planned_by("train_agreement")  # it reads chapters 3-5's runs


def test_a_sweep_prints_its_estimate_before_training(tmp_store, capsys):
    t = TeacherConfig(
        dataset="mnist",
        model="lenet5",
        epochs=1,
        train_size=200,
        batch_size=100,
        evals=1,
        test_size=100,
    )
    runs.run_all([t], "cpu")
    assert (
        "1 run to train, about" in capsys.readouterr().err
    )  # from the repository's benchmarks, not the store's
    assert store.get(t) is not None
    # the bar counts the runs it trains, weighed by their estimates: the stored one is not work
    runs.run_all([t, replace(t, seed=1)], "cpu")
    err = capsys.readouterr().err
    assert "1 run to train, about" in err
    assert "runs: 1 of 1 trained, 100 % of the estimated work" in err


def test_a_student_reading_a_cache_an_earlier_one_built_costs_less(tmp_path):
    _bench(tmp_path, "cuda", "lenet5", 1_000.0)
    t = TeacherConfig(
        dataset="mnist", model="lenet5", epochs=1, train_size=1_000, batch_size=100, crop_pad=2
    )
    # 60 passes over 50 crop-and-flip views: its labels come from a logit cache
    first = StudentConfig(**{**t.__dict__, "epochs": 60, "teachers": (t,), "init_seed": 9})
    second = replace(first, seed=1, init_seed=10)  # the same teachers, data and views: one cache
    assert logit_cache.pays(first)
    (a, b), _ = compute.run_seconds([first, second], "cuda", tmp_path)
    assert b < a and compute.run_seconds([second], "cuda", tmp_path)[0] == [pytest.approx(a)]
    assert compute.estimate([first, second], "cuda", tmp_path)[0] == pytest.approx(a + b)


GPU_CHAPTERS = [n for n in chapters.CHAPTERS if "gpu" in chapters.profiles(n)]


def test_every_chapter_but_lenet_mnist_has_a_gpu_profile():
    assert GPU_CHAPTERS == [n for n in chapters.CHAPTERS if n != "lenet_mnist"]


@pytest.mark.parametrize("name", GPU_CHAPTERS)
def test_a_gpu_profile_adds_at_most_20_h100_minutes(tmp_path, monkeypatch, name):
    """Sized at the single-network rate measured on an H100 (packing only makes it faster), on the
    full training split (or half) with PreResNet-20 or -56; runs shared with the chapters before it
    in the book (the same config is the same run) are trained once, by the first."""
    monkeypatch.delenv("KDREPRO_COMPILE", raising=False)  # sized for eager steps
    _bench(tmp_path, "cuda", "preresnet20", compute.H100_PRERESNET20)
    gpu = {n: [c for p in chapters.plans(n, "gpu") for c in p.configs] for n in GPU_CHAPTERS}
    before = {c.run_id for n in GPU_CHAPTERS[: GPU_CHAPTERS.index(name)] for c in gpu[n]}
    configs = [c for c in dict.fromkeys(gpu[name]) if c.run_id not in before]
    seconds = compute.estimate(configs, "cuda", tmp_path)[0] if configs else 0.0
    assert seconds <= 20 * 60, f"{name}: {seconds / 60:.1f} min"
    assert compute.h100_seconds(configs) == pytest.approx(
        seconds
    )  # what the chapter prints, without the file
    assert (
        f"{len(gpu[name]) - len(configs)} of them trained by earlier chapters: about "
        in costs.gpu_cost(name)
        if configs
        else "runs are all trained by earlier chapters" in costs.gpu_cost(name)
    )
    assert all(
        c.train_size is None and c.model in ("preresnet20", "preresnet56")
        for c in configs
        if isinstance(c, TeacherConfig)
    )


def test_a_chapter_without_a_gpu_profile_says_so():
    with pytest.raises(
        ConfigError, match=r"^profile='gpu': this chapter has no gpu profile yet; expected one of"
    ):
        chapters.plans("lenet_mnist", "gpu")


def test_the_paper_cost_on_a_gpu_is_labelled_an_assumption_until_a_cuda_benchmark_exists(
    monkeypatch,
):
    monkeypatch.setattr(
        compute, "benchmarks", lambda device_type, root=None, packs=False: ()
    )  # as before any GPU session
    assert "on an H100, assuming the rate the gpu profiles were sized for" in costs.paper_cost(
        "self_vs_ensemble"
    )
    assert "no CUDA benchmark is committed yet, so no estimate there" in costs.paper_cost(
        "lenet_mnist"
    )  # not sized


def test_the_gpu_cost_gives_the_packed_time_once_a_packed_benchmark_is_committed(monkeypatch):
    def bench(rate_packed):
        def rows(device_type, root=None, packs=False):
            if device_type != "cuda" or (packs and rate_packed is None):
                return ()
            rate = rate_packed if packs else compute.H100_PRERESNET20
            return (("preresnet20", rate, "cuda-test.json"),)

        return rows

    monkeypatch.setattr(compute, "benchmarks", bench(4 * compute.H100_PRERESNET20))
    line = costs.gpu_cost("self_vs_ensemble")
    one, packed = (float(x) for x in re.findall(r"about (\d+) min", line))
    assert "in packs (--pack" in line and packed < one
    monkeypatch.setattr(compute, "benchmarks", bench(None))  # single networks only
    assert costs.gpu_cost("self_vs_ensemble").endswith(
        "one run at a time (packing runs, --pack, should be faster)."
    )


def test_the_compute_line_counts_runs_time_hardware_and_commits_and_warns_of_dirty_ones():
    here = checkpoint.fingerprint()
    table = pd.DataFrame(
        {
            "wall_seconds": [4_000.0, 3_200.0],
            "device_name": ["AMD EPYC", "AMD EPYC"],
            "git_commit": ["4cbc192aaaa", "cc38973bbbb"],
            "git_dirty": [False, True],
        }
    )
    assert costs.compute_line(table, [{"fingerprint": here}] * 2) == (
        f"2 runs, 2.0 h of training on AMD EPYC (torch {here['torch']}, numerics "
        f"v{here['numerics']}, commits 4cbc192a, cc38973b). Warning: 1 run was made with "
        "uncommitted changes in kdrepro/."
    )
