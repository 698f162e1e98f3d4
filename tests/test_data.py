"""Tests of kdrepro.data: the real offline datasets (exact sizes and label counts), the decode
cache, the DatasetMissing messages, and the stratified, nested subsets."""

import gzip
import io
import os
import pickle
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import random_split

from kdrepro import data
from kdrepro.paths import data_root

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="session", autouse=True)
def shared_data():
    """Point KDREPRO_DATA at the repository's sibling shared/data unless the environment already
    says where."""
    with pytest.MonkeyPatch.context() as mp:
        if "KDREPRO_DATA" not in os.environ:
            mp.setenv("KDREPRO_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
        yield


@pytest.fixture
def no_network(monkeypatch):
    """Fail any download attempt at once, so the missing-dataset tests are fast and offline."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def mnist_labels() -> torch.Tensor:
    return data.load("mnist", "train")[1]


# --- real datasets
# ------------------------------------------------------------------------------------------


def test_mnist():
    x, y = data.load("mnist", "train")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.uint8 and x.is_contiguous()
    assert y.shape == (60000,) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == MNIST_TRAIN_COUNTS
    assert x.double().mean().item() / 255 == pytest.approx(0.1307, abs=1e-4)
    x, y = data.load("mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert data.load("mnist", "test") is data.load("mnist", "test")  # memoized


def test_fashion_mnist():
    if not ((data_root() / "FashionMNIST" / "raw").is_dir() or data.DEBIAN_FASHION_MNIST.is_dir()):
        pytest.skip("Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
    x, y = data.load("fashion_mnist", "train")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [6000] * 10
    assert x.double().mean().item() / 255 == pytest.approx(0.2860, abs=1e-4)
    x, y = data.load("fashion_mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10


def test_cifar10_jpeg(monkeypatch):
    # an earlier test may have loaded it under another cache folder (its tmp_store)
    data._load.cache_clear()
    x, y = data.load("cifar10_jpeg", "train")
    assert x.shape == (50000, 3, 32, 32) and x.dtype == torch.uint8 and x.is_contiguous()
    assert torch.bincount(y).tolist() == [5000] * 10
    # per-channel means from shared/data/README.md: checks the channel order (RGB) too
    assert (x.double().mean((0, 2, 3)) / 255).tolist() == pytest.approx(
        [0.4913, 0.4821, 0.4465], abs=1e-4
    )
    x, y = data.load("cifar10_jpeg", "test")
    assert x.shape == (10000, 3, 32, 32) and torch.bincount(y).tolist() == [1000] * 10

    # a second load, past the in-process memo, must come from the decode cache
    data._load.cache_clear()
    monkeypatch.setattr(
        data, "_decode_jpegs", lambda blobs: pytest.fail("decoded again instead of using the cache")
    )
    x2, y2 = data.load("cifar10_jpeg", "test")
    assert torch.equal(x, x2) and torch.equal(y, y2)


def write_jpeg_zip(path: Path, per_class: int) -> None:
    """A tiny CIFAR-like zip inside a top-level folder; class k is a flat image of grey level 20k +
    10."""
    classes = [f"class{k}" for k in range(10)]
    with zipfile.ZipFile(path, "w") as z:
        for k in reversed(
            range(10)
        ):  # written out of order: labels must come from the sorted names
            for split in ("train", "test"):
                for i in range(per_class):
                    buf = io.BytesIO()
                    Image.new("RGB", (32, 32), (20 * k + 10,) * 3).save(buf, "JPEG", quality=75)
                    z.writestr(f"cifar/{split}/{classes[k]}/{i:04d}.jpg", buf.getvalue())


def test_jpeg_cache_keyed_by_zip_content(tmp_path, monkeypatch):
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delitem(
        data.DIGESTS, ("cifar10_jpeg", "cifar10-jpeg.zip")
    )  # a made-up zip: no published digest
    write_jpeg_zip(tmp_path / "cifar10-jpeg.zip", per_class=2)
    x, y = data.load("cifar10_jpeg", "train", root=tmp_path)
    assert x.shape == (20, 3, 32, 32) and y.tolist() == [k for k in range(10) for _ in range(2)]
    assert (x.float().mean((1, 2, 3)) - (20 * y + 10)).abs().max() < 2  # label k really is image k
    assert len(list((tmp_path / "cache" / "datasets").glob("*.pt"))) == 1

    data._load.cache_clear()
    with monkeypatch.context() as mp:
        mp.setattr(
            data,
            "_decode_jpegs",
            lambda blobs: pytest.fail("decoded again instead of using the cache"),
        )
        x2, y2 = data.load("cifar10_jpeg", "train", root=tmp_path)
    assert torch.equal(x, x2) and torch.equal(y, y2)

    write_jpeg_zip(tmp_path / "cifar10-jpeg.zip", per_class=3)
    data._load.cache_clear()
    x3, _ = data.load("cifar10_jpeg", "train", root=tmp_path)
    assert x3.shape[0] == 30
    assert len(list((tmp_path / "cache" / "datasets").glob("*.pt"))) == 2
    assert not list((tmp_path / "cache" / "datasets").glob("*.tmp"))
    data._load.cache_clear()


def test_torchvision_layout_and_cache(tmp_path, monkeypatch, no_network):
    """A fake CIFAR-100 in torchvision's layout (its md5 check patched out) comes back NCHW, then
    from the cache."""
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rows = (np.arange(4 * 3072).reshape(4, 3072) % 251).astype(
        np.uint8
    )  # CIFAR rows are (C, H, W) flattened
    for split in ("train", "test"):
        (folder / split).write_bytes(pickle.dumps({"data": rows, "fine_labels": [0, 99, 5, 7]}))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{k}" for k in range(100)]}))

    x, y = data.load("cifar100", "train", root=tmp_path)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8 and x.is_contiguous()
    assert torch.equal(x, torch.from_numpy(rows).view(4, 3, 32, 32)) and y.tolist() == [0, 99, 5, 7]
    data._load.cache_clear()
    monkeypatch.setattr(
        data,
        "_from_torchvision",
        lambda *args: pytest.fail("read again instead of using the cache"),
    )
    assert torch.equal(data.load("cifar100", "train", root=tmp_path)[0], x)
    data._load.cache_clear()


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes, gzipped: magic 0x0000 0x08 ndim, big-endian sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_emnist_reads_its_byclass_idx_files_as_stored(tmp_path, no_network):
    folder = tmp_path / "EMNIST" / "raw"
    folder.mkdir(parents=True)
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 251
    write_idx(folder / "emnist-byclass-train-images-idx3-ubyte.gz", images)
    write_idx(folder / "emnist-byclass-train-labels-idx1-ubyte.gz", np.array([61, 0, 35]))
    x, y = data.load("emnist", "train", root=tmp_path)
    # not transposed: the paper's code used NIST's layout as torchvision reads it
    assert x.shape == (3, 1, 28, 28) and torch.equal(x[:, 0], torch.from_numpy(images).byte())
    assert y.tolist() == [61, 0, 35] and y.dtype == torch.int64
    assert data.SHAPES["emnist"] == (1, 28, 28) and data.NUM_CLASSES["emnist"] == 62
    data._load.cache_clear()


# --- missing datasets and bad arguments
# ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar100", "cifar10", "svhn", "emnist"])
def test_missing_downloadable(name, tmp_path, no_network):
    with pytest.raises(data.DatasetMissing) as e:
        data.load(name, "train", root=tmp_path)
    msg = str(e.value)
    assert (
        "\n" not in msg
        and msg.startswith(f"{name}:")
        and str(tmp_path) in msg
        and "internet" in msg
    )


def test_missing_not_downloaded_into_read_only_root(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried to download"))
    root = tmp_path / "ro"
    root.mkdir(
        mode=0o555
    )  # marked read-only, like the shared data folder (which even root must not write)
    with pytest.raises(data.DatasetMissing, match="read-only") as e:
        data.load("cifar100", "test", root=root)
    assert "\n" not in str(e.value) and str(root) in str(e.value)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("name", ["mnist", "cifar10_jpeg"])
def test_missing_local(name, tmp_path):
    with pytest.raises(data.DatasetMissing) as e:
        data.load(name, "test", root=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{name}:") and str(tmp_path) in msg
    assert isinstance(e.value, FileNotFoundError)


def test_bad_name_or_split():
    with pytest.raises(
        ValueError,
        match="mnist, fashion_mnist, cifar10, cifar10_jpeg, cifar100, svhn, emnist, imdb, imagenet",
    ):
        data.load("tinyimagenet", "train")
    with pytest.raises(ValueError, match="train, test"):
        data.load("mnist", "val")


# --- preprocessing
# ------------------------------------------------------------------------------------------


def test_unitcube():
    v = data.unitcube(torch.tensor([0, 127, 128, 255], dtype=torch.uint8).view(1, 1, 2, 2))
    assert v.dtype == torch.float32 and v.shape == (1, 1, 2, 2)
    assert v.flatten()[0] == -1 and v.flatten()[3] == 1
    assert v.flatten()[1].item() == pytest.approx(
        -v.flatten()[2].item(), abs=1e-6
    )  # 127.5 maps to 0
    assert v.flatten()[1] < 0 < v.flatten()[2]


# --- subsets
# ------------------------------------------------------------------------------------------------


def assert_prefixes_balanced(labels: torch.Tensor, order: torch.Tensor) -> None:
    """In every prefix, classes with examples left have counts differing by at most one."""
    counts = torch.nn.functional.one_hot(labels[order]).cumsum(0)  # (prefix length - 1, class)
    left = counts < torch.bincount(labels)
    big = torch.iinfo(counts.dtype).max
    lo = torch.where(left, counts, big).min(1).values
    hi = torch.where(left, counts, -1).max(1).values
    has_left = left.any(1)
    assert ((hi - lo)[has_left] <= 1).all()


def test_stratified_order_mnist():
    y = mnist_labels()
    order = data.stratified_order(y, seed=0)
    assert order.dtype == torch.int64 and torch.equal(order.sort().values, torch.arange(len(y)))
    assert torch.equal(order, data.stratified_order(y, seed=0))
    assert not torch.equal(order, data.stratified_order(y, seed=1))
    assert torch.bincount(y[order[:200]]).tolist() == [20] * 10
    assert (
        torch.bincount(y[order[:10005]], minlength=10).sort().values.tolist()
        == [1000] * 5 + [1001] * 5
    )
    assert_prefixes_balanced(y, order)


def test_stratified_order_unbalanced():
    y = torch.tensor([7] * 3 + [2] * 20 + [5] * 7)[
        torch.randperm(30, generator=torch.Generator().manual_seed(0))
    ]
    order = data.stratified_order(y, seed=3)
    assert torch.equal(order.sort().values, torch.arange(30))
    assert_prefixes_balanced(y, order)
    assert (
        y[order[-13:]].tolist() == [2] * 13
    )  # once the small classes run out, the big one fills the tail


def test_halves():
    y = mnist_labels()[:1001]  # odd size
    d0, d1 = data.halves(y, seed=0)
    assert (len(d0), len(d1)) == (500, 501)
    assert torch.equal(torch.cat([d0, d1]).sort().values, torch.arange(1001))
    d0b, d1b = data.halves(y, seed=0)
    assert torch.equal(d0, d0b) and torch.equal(d1, d1b)
    assert not torch.equal(d0, data.halves(y, seed=1)[0])
    split = random_split(range(1001), [500, 501], generator=torch.Generator().manual_seed(0))
    assert d0.tolist() == split[0].indices and d1.tolist() == split[1].indices


@pytest.mark.parametrize("part", ["all", "D0", "D1"])
def test_subset_nested_and_stratified(part):
    y = mnist_labels()
    small, large = data.subset(y, 200, part, seed=0), data.subset(y, 2000, part, seed=0)
    assert torch.equal(small, large[:200])  # nested: a prefix, hence a subset
    assert torch.bincount(y[small]).tolist() == [20] * 10
    assert torch.bincount(y[large]).tolist() == [200] * 10
    assert not torch.equal(small, data.subset(y, 200, part, seed=1))


def test_subset_parts():
    y = mnist_labels()
    d0, d1 = data.halves(y, seed=0)
    s0, s1 = data.subset(y, 1000, "D0"), data.subset(y, 1000, "D1")
    assert set(s0.tolist()) <= set(d0.tolist()) and set(s1.tolist()) <= set(d1.tolist())
    assert not set(s0.tolist()) & set(s1.tolist())
    both = data.subset(y, 1000, "D0+D1")
    assert len(both) == 2000 and torch.equal(both, torch.cat([s0, s1]))
    assert torch.equal(data.subset(y).sort().values, torch.arange(60000))
    assert torch.equal(data.subset(y, part="D1").sort().values, d1.sort().values)


def test_subset_errors():
    y = mnist_labels()
    with pytest.raises(ValueError, match="between 1 and 30000"):
        data.subset(y, 30001, "D0")
    with pytest.raises(ValueError, match="between 1 and 60000"):
        data.subset(y, 0)
    with pytest.raises(ValueError, match="all, D0, D1, D0\\+D1"):
        data.subset(y, 10, "D2")


def _truncated_copy(src: Path, dst: Path, keep: float = 0.5) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * keep)])
    return dst


def test_a_truncated_cifar_zip_is_named_with_what_to_do(tmp_path, monkeypatch):
    real = data_root() / "cifar10-jpeg.zip"
    _truncated_copy(real, tmp_path / "cifar10-jpeg.zip")
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(data.DatasetCorrupt) as e:
        data.load("cifar10_jpeg", "test", root=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "cifar10-jpeg.zip") in msg
    assert "is not the published a0281a1fcd26" in msg and "copy the file again" in msg
    # without a published digest to compare with, the archive itself is found bad
    monkeypatch.delitem(data.DIGESTS, ("cifar10_jpeg", "cifar10-jpeg.zip"))
    data._load.cache_clear()
    with pytest.raises(data.DatasetCorrupt, match="not a readable zip archive.*copy it again"):
        data.load("cifar10_jpeg", "test", root=tmp_path)
    data._load.cache_clear()


def test_truncated_idx_files_are_named(tmp_path):
    raw = data_root() / "MNIST" / "raw"
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        (tmp_path / "MNIST" / "raw" / name).write_bytes((raw / name).read_bytes())
    _truncated_copy(
        raw / "t10k-images-idx3-ubyte.gz", tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    )
    with pytest.raises(
        data.DatasetCorrupt, match="t10k-images-idx3-ubyte.gz: sha256 .* is not the published"
    ):
        data.load("mnist", "test", root=tmp_path)
    # Fashion-MNIST has no published digest of its Debian gzips: gzip's own check catches the
    # truncation
    folder = tmp_path / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        _truncated_copy(raw / name, folder / name, keep=1.0 if "labels" in name else 0.5)
    with pytest.raises(
        data.DatasetCorrupt, match="t10k-images-idx3-ubyte.gz: not a valid gzip file.*copy it again"
    ):
        data.load("fashion_mnist", "test", root=tmp_path)
    # an uncompressed IDX file shorter than its header says
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    (folder / "t10k-images-idx3-ubyte").write_bytes(
        gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())[:-7]
    )
    with pytest.raises(
        data.DatasetCorrupt, match="not an IDX file of unsigned bytes of the size its header gives"
    ):
        data.load("fashion_mnist", "test", root=tmp_path)


def test_a_relative_data_root_means_the_repository_root_from_any_directory(monkeypatch, tmp_path):
    from kdrepro.paths import REPO

    monkeypatch.setenv("KDREPRO_DATA", "../shared/data")
    here = data_root()
    monkeypatch.chdir(REPO / "book")  # where papermill and nbval run a chapter
    assert data_root() == here == REPO / "../shared/data"
    monkeypatch.chdir(tmp_path)
    assert data_root() == here and data_root(tmp_path) == tmp_path
