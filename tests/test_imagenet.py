"""ImageNet (Table 2): a class-folder tree decodes once into a memory-mapped cache of centre crops,
a killed or damaged cache is never read as data, runs on it stream batches from the CPU, and its
recipe (ResNet-50, warm-up, random-resized crops) is the paper's App. A.3. A tiny tree stands in for
the 1.28M images."""

import math

import pytest
import torch
from torchvision.io import encode_jpeg, write_png

from kdrepro import augment, data, imagenet, inputs, runs, schedule
from kdrepro.config import StudentConfig, TeacherConfig
from kdrepro.errors import ConfigError

# torchvision 0.29 deprecates its image codecs for TorchCodec; the pinned versions have them
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# (class, height, width, colour): portrait and landscape, one grey image, one PNG
TRAIN = [("n01", 300, 200, 40), ("n01", 240, 320, 90), ("n02", 256, 256, 140)]
TRAIN += [("n02", 500, 260, 190), ("n03", 230, 230, 220), ("n03", 224, 400, 10)]
TEST = [("n01", 260, 300, 60), ("n02", 400, 300, 120), ("n03", 300, 300, 250)]


def tree(root, rows=TRAIN, folder="train"):
    for i, (wnid, h, w, colour) in enumerate(rows):
        path = root / "imagenet" / folder / wnid
        path.mkdir(parents=True, exist_ok=True)
        image = torch.full((1 if i == 1 else 3, h, w), colour, dtype=torch.uint8)
        if i == 0:  # a PNG decodes exactly
            write_png(image, str(path / f"{i}.png"))
        else:
            (path / f"{i}.JPEG").write_bytes(encode_jpeg(image, quality=95).numpy().tobytes())


@pytest.fixture
def small(tmp_store, monkeypatch):
    """A 3-class ImageNet of 6 training and 3 validation images under the test's data root."""
    monkeypatch.setitem(data.SIZES, "imagenet", (len(TRAIN), len(TEST)))
    monkeypatch.setitem(data.NUM_CLASSES, "imagenet", 3)
    tree(tmp_store)
    tree(tmp_store, TEST, "val")
    monkeypatch.setenv("KDREPRO_DATA", str(tmp_store))
    return tmp_store


def test_a_tree_decodes_once_into_centre_crops(small, monkeypatch):
    x, y = imagenet.load("train", small, workers=1)
    assert x.shape == (6, 3, 224, 224) and x.dtype == torch.uint8
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(x[0], torch.full((3, 224, 224), 40, dtype=torch.uint8))  # the PNG, exactly
    assert torch.equal(x[1][0], x[1][2])  # the grey image, as RGB
    assert all(abs(x[i].float().mean().item() - TRAIN[i][3]) < 2 for i in range(6))  # JPEG q95
    # the split "test" is "val", decoded by a pool of processes
    test_x, test_y = data.load("imagenet", "test", small)
    assert test_x.shape == (3, 3, 224, 224) and test_y.tolist() == [0, 1, 2]
    assert torch.equal(test_x[2], torch.full_like(test_x[2], 250)) or test_x[2].float().std() < 1
    # the second load maps the cache: nothing is decoded again
    monkeypatch.setattr(imagenet, "_decode_chunk", lambda paths: pytest.fail("decoded again"))
    again, labels = imagenet.load("train", small)
    assert torch.equal(again, x) and torch.equal(labels, y)


def test_a_missing_incomplete_or_damaged_imagenet_is_one_line(small, tmp_path, monkeypatch):
    with pytest.raises(data.DatasetMissing, match=r"looked for .*imagenet/train\); put"):
        imagenet.load("train", tmp_path / "elsewhere")
    (small / "imagenet" / "train" / "n03" / "4.JPEG").unlink()
    with pytest.raises(data.DatasetMissing, match="holds 5 images in 3 class folders, not 6 in 3"):
        imagenet.load("train", small)
    tree(small)
    # a build killed half-way leaves only its .partial file: the next load decodes again
    calls, decode = [], imagenet._decode_chunk

    def dies(paths):
        calls.append(paths)
        raise KeyboardInterrupt

    monkeypatch.setattr(imagenet, "_decode_chunk", dies)
    with pytest.raises(KeyboardInterrupt):
        imagenet.load("train", small, workers=1)
    assert [p.name for p in (small / "cache" / "datasets").glob("imagenet-train-*.u8*")] == [
        f"{p.name}" for p in (small / "cache" / "datasets").glob("*.u8.partial")
    ]
    monkeypatch.setattr(imagenet, "_decode_chunk", decode)
    x, _ = imagenet.load("train", small, workers=1)
    assert calls and x.shape[0] == 6
    # a truncated cache is refused, with what to do
    (cached,) = (small / "cache" / "datasets").glob("imagenet-train-*.u8")
    cached.write_bytes(cached.read_bytes()[:-1])
    with pytest.raises(data.DatasetCorrupt, match="not the 903,168 of 6 images; delete it"):
        imagenet.load("train", small)


def test_random_resized_crops_are_torchvisions_boxes_resampled():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    # the whole image at scale 1 and ratio 1: the identity
    assert torch.equal(augment.random_resized_crop(x, g, scale=(1, 1), ratio=(1, 1)), x)
    # a quarter of the area at ratio 1: an 8 x 8 box stretched to 16 x 16, so on an image whose
    # pixels hold their column index the output samples columns half a pixel apart, from a quarter
    # pixel before the box's first column to a quarter after its last (less at the image's edge)
    cols = torch.arange(16.0).expand(4, 3, 16, 16)
    out = augment.random_resized_crop(cols, g, scale=(0.25, 0.25), ratio=(1, 1))
    steps = out[:, 0, 0].diff(dim=1)
    inner = (out[:, 0, 0, 0] > 0) & (out[:, 0, 0, -1] < 15)  # boxes clear of the image's edges
    assert inner.any() and torch.allclose(steps[inner], torch.tensor(0.5))
    span = out.amax((1, 2, 3)) - out.amin((1, 2, 3))
    assert torch.allclose(span[inner], torch.tensor(7.5)) and (span >= 7).all()
    # the same generator state gives the same crops; the policy's output is in [-1, 1]
    a = augment.make("rrc_flip")((x * 255).to(torch.uint8), torch.Generator().manual_seed(1))
    b = augment.make("rrc_flip")((x * 255).to(torch.uint8), torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and a[1] is None and a[0].abs().max() <= 1


def test_imagenet_runs_stream_their_whole_split_from_disk(small):
    cfg = TeacherConfig(
        dataset="imagenet", model="preresnet8", epochs=1, batch_size=3, augment="rrc_flip", evals=1
    )
    x, _ = inputs.training_set(cfg)
    assert x is data.load("imagenet", "train")[0]  # mapped, never copied
    result = runs.run(cfg, progress=False)
    assert result["steps"] == 2 and 0 <= result["final"]["clean_train_accuracy"] <= 1
    for kw, message in (
        (dict(train_size=3), "imagenet.*whole training split"),
        (dict(train_part="D0"), "imagenet.*whole training split"),
        (dict(epochs=2, warmup_epochs=2), r"warmup_epochs=2: must leave steps .*\(4 of 4 steps\)"),
    ):
        with pytest.raises(ConfigError, match=message):
            TeacherConfig(**{**dict(dataset="imagenet", model="preresnet8", batch_size=3), **kw})
    with pytest.raises(ConfigError, match="model='resnet50': has no norm or width"):
        TeacherConfig(dataset="imagenet", model="resnet50", width=2)


def test_the_imagenet_recipe_is_app_a3s():
    from kdrepro.chapters import self_vs_ensemble

    plan = self_vs_ensemble.plan("paper", dataset="imagenet")
    teacher = plan.configs[0]
    student = next(c for c in plan.configs if isinstance(c, StudentConfig))
    assert (teacher.model, teacher.augment, teacher.batch_size) == ("resnet50", "rrc_flip", 1024)
    assert (teacher.epochs, teacher.weight_decay, student.weight_decay) == (90, 1e-4, 0.0)
    assert teacher.steps == student.steps == 90 * 1_281_167 // 1024
    # a 5-epoch linear warm-up to 0.1, then the cosine
    warm = 5 * 1_281_167 // 1024
    assert teacher.warmup_steps == warm
    lrs = [schedule.lr_at(teacher, 0.1, k) for k in (0, warm - 1, warm, teacher.steps - 1)]
    assert lrs[0] == pytest.approx(0.1 / warm) and lrs[1] == lrs[2] == pytest.approx(0.1)
    cosine = teacher.steps - warm
    assert lrs[3] == pytest.approx(0.1 * (1 + math.cos(math.pi * (cosine - 1) / cosine)) / 2)
    # runs without a warm-up hash as before: the field is left out of their ids
    assert "warmup_epochs" not in TeacherConfig().to_dict() and "warmup_epochs" in teacher.to_dict()
    with pytest.raises(ConfigError, match="recipes have the paper profile alone"):
        self_vs_ensemble.plan("budget", dataset="imagenet")
