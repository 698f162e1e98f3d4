"""The throughput benchmark: both pipelines run, and the conventional one feeds what kdrepro's
augmentation does."""

import json
import math

import torch

from kdrepro import augment, bench, data


def test_both_pipelines_give_finite_throughput():
    for fn in (bench.kdrepro_throughput, bench.conventional_throughput):
        rate = fn(
            "lenet5",
            "mnist",
            images=256,
            batch_size=128,
            device="cpu",
            policy="crop",
            pad=2,
            warmup=1,
        )
        assert rate > 0 and math.isfinite(rate)


def test_packed_networks_give_finite_model_image_throughput():
    rate = bench.packed_throughput(
        "lenet5",
        "mnist",
        images=256,
        batch_size=64,
        device="cpu",
        policy="crop",
        pad=2,
        warmup=1,
        groups=3,
    )
    assert rate > 0 and math.isfinite(rate)


def test_conventional_batches_match_kdrepro_augmentation():
    x, y = data.load("mnist", "train")
    x, y = x[:512], y[:512]
    xb, yb = next(iter(bench.conventional_loader(x, y, 256, "crop", 2, workers=0)))
    ours, _ = augment.make("crop", 2)(x[:256], torch.Generator().manual_seed(0))
    assert xb.shape == ours.shape == (256, 1, 28, 28) and xb.dtype == ours.dtype == torch.float32
    assert yb.dtype == torch.int64 and xb.min() >= -1 and xb.max() <= 1
    # same pixel statistics: black background at -1 (padding included), similar ink per image
    assert abs((xb == -1).float().mean() - (ours == -1).float().mean()) < 0.02
    assert abs(xb.mean() - ours.mean()) < 0.05
    # without padding the transforms reduce to ToTensor + Normalize(0.5, 0.5), i.e. kdrepro's
    # unitcube, exactly
    ds = bench.PILDataset(x[:4], y[:4], bench.conventional_transform("crop", 0, 28, 1))
    assert torch.equal(torch.stack([ds[i][0] for i in range(4)]), data.unitcube(x[:4]))


def test_cifar_transform_flips_and_normalizes_rgb():
    t = bench.conventional_transform("crop_flip", 4, 32, 3)
    assert [type(s).__name__ for s in t.transforms] == [
        "RandomCrop",
        "RandomHorizontalFlip",
        "ToTensor",
        "Normalize",
    ]
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = bench.PILDataset(x, torch.tensor([0, 1]), t)[0][0]
    assert out.shape == (3, 32, 32) and out.min() >= -1 and out.max() <= 1


def test_the_command_writes_its_numbers_and_the_machine(tmp_path, capsys):
    out = tmp_path / "cpu-test.json"
    assert (
        bench.main(
            [
                "--device",
                "cpu",
                "--cases",
                "lenet5",
                "--images",
                "256",
                "--repeats",
                "1",
                "--warmup",
                "1",
                "--workers",
                "0",
                "--distill",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    saved = json.loads(out.read_text())
    assert (
        saved["provenance"]["torch"] == str(torch.__version__)
        and saved["provenance"]["device"] == "cpu"
    )
    assert [r["case"] for r in saved["results"]] == ["lenet5"] and saved["results"][0][
        "kdrepro"
    ] > 0
    row = saved["results"][0]
    # no budget student of a 2-teacher ensemble reads a cache: this one labels online
    assert bench.amortisation(2, "lenet5") is None and row["cached_teacher"] is False
    assert row["teachers"] == 2 and row["distill_cost"] == row["kdrepro"] / row["distilled"] > 0
    assert "lenet5" in capsys.readouterr().out


def test_a_cached_student_is_charged_its_share_of_the_build():
    # chapter 2's 15 budget students of one LeNet-5 each read their own teacher's cache
    share = bench.amortisation(1, "lenet5")
    assert share is not None and share > 1
    row = bench.measure(
        "lenet5", torch.device("cpu"), 256, 1, 128, 1, 0, distill=1, cache_images=64
    )
    assert row["cached_teacher"] is True and row["amortisation"] == share and row["cache_built"] > 0
    assert row["distill_cost"] == row["kdrepro"] / row["distilled"] + row["kdrepro"] / (
        row["cache_built"] * share
    )
    rate, built = bench.cached_throughput(
        "lenet5", "mnist", 256, 64, "cpu", "crop", 2, 1, teachers=2, cache_images=32
    )
    assert rate > 0 and built > 0
