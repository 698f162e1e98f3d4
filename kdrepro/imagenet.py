"""ImageNet-1k (Table 2, App. C.3) as one uint8 array per split on disk, memory-mapped.

The rest of kdrepro keeps a split in memory as uint8 (N, C, H, W); ImageNet's 1.28M training images
do not fit, so this module decodes the class-folder tree once into a file of fixed-size images and
`load` maps it: indexing a batch reads those images from disk, and nothing else changes. Runs on
ImageNet keep their training set on the CPU and copy each batch to the device (`data.MAPPED`).

Source: `<data root>/imagenet/{train,val}/<wnid>/<image>` (the layout torchvision's ImageFolder
reads, with the validation images sorted into class folders); the split "test" is "val". Classes
are the sorted folder names. Each image is decoded as RGB, resized so its shorter side is
`RESIZE` (antialiased bilinear) and centre-cropped to `SIZE` x `SIZE`: the standard evaluation
transform, stored once. Training draws its random-resized crops from these stored images
(`augment.random_resized_crop`), not from the whole original image as torchvision's
RandomResizedCrop does: a deviation the book states where it runs ImageNet.

The array is written beside a `.partial` name and renamed when complete, so a killed build leaves no
torn file; its labels are a digest-checked tensor file. The images themselves are checked by size
only: hashing 190 GB at every load would cost minutes.
"""

import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from .data import NUM_CLASSES, SIZES, DatasetCorrupt, DatasetMissing
from .files import CorruptFile, load_tensors, save_tensors, sha256
from .paths import cache_dir

RESIZE, SIZE = 256, 224  # shorter side, then the centre crop: the usual ImageNet evaluation view
FOLDERS = {"train": "train", "test": "val"}
CHUNK = 256  # images per worker task
EXTENSIONS = (".jpeg", ".jpg", ".png")
_VERSION = 1  # part of the cache key: bump it when decoding changes


def files(split: str, root: Path) -> tuple[list[Path], torch.Tensor]:
    """The split's image files in a fixed order (class folders sorted, then file names) and their
    labels (the class folder's rank); DatasetMissing where the folder is absent or incomplete."""
    folder = root / "imagenet" / FOLDERS[split]
    hint = (
        f"put ImageNet-1k's {FOLDERS[split]} images in {folder}/<wnid>/ (validation images sorted "
        "into class folders too) or set KDREPRO_DATA to a folder that has imagenet/"
    )
    if not folder.is_dir():
        raise DatasetMissing(f"imagenet: not found (looked for {folder}); {hint}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    paths, labels = [], []
    for k, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in EXTENSIONS)
        paths += found
        labels += [k] * len(found)
    expected = SIZES["imagenet"][split == "test"]
    if len(paths) != expected or len(classes) != NUM_CLASSES["imagenet"]:
        raise DatasetMissing(
            f"imagenet: {folder} holds {len(paths):,} images in {len(classes)} class folders, not "
            f"{expected:,} in {NUM_CLASSES['imagenet']}; {hint}"
        )
    return paths, torch.tensor(labels)


def decode(path: Path) -> np.ndarray:
    """One image file as uint8 (3, SIZE, SIZE): RGB, shorter side RESIZE, centre crop."""
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs; 0.29 is pinned
            warnings.simplefilter("ignore", DeprecationWarning)
            image = decode_image(torchvision.io.read_file(str(path)), mode=ImageReadMode.RGB)
    except RuntimeError as e:
        raise DatasetCorrupt(f"{path}: not a readable image ({e}); copy it again") from None
    image = TF.resize(image, [RESIZE], antialias=True)
    return TF.center_crop(image, [SIZE, SIZE]).numpy()


def _decode_chunk(paths: list[Path]) -> np.ndarray:
    torch.set_num_threads(1)  # one process per core instead
    return np.stack([decode(p) for p in paths])


def _key(paths: list[Path], root: Path) -> str:
    """What the cache depends on: the files' names and sizes (not their bytes: 150 GB), and how
    they are decoded."""
    listing = "\n".join(f"{p.relative_to(root)}:{p.stat().st_size}" for p in paths)
    return sha256(f"v{_VERSION}:{RESIZE}:{SIZE}\n{listing}".encode())[:16]


def load(split: str, root: Path, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's images as a read-only memory-mapped uint8 tensor (N, 3, SIZE, SIZE) and its
    labels, decoding the folder tree into the cache first if no cache matches it."""
    paths, labels = files(split, root)
    stem = cache_dir("datasets") / f"imagenet-{split}-{_key(paths, root)}"
    images, labels_file = stem.with_suffix(".u8"), stem.with_suffix(".labels")
    shape = (len(paths), 3, SIZE, SIZE)
    if not images.is_file():  # the labels first: the images' rename completes the cache
        save_tensors(labels_file, labels)
        _build(paths, images, shape, workers or os.cpu_count() or 1)
    if images.stat().st_size != int(np.prod(shape)):
        raise DatasetCorrupt(
            f"{images}: {images.stat().st_size:,} bytes, not the {int(np.prod(shape)):,} of "
            f"{len(paths):,} images; delete it to decode the split again"
        )
    try:
        stored = load_tensors(labels_file)[0]
    except (CorruptFile, FileNotFoundError) as e:
        raise DatasetCorrupt(f"{labels_file}: {e}; delete {images} to decode again") from None
    if not torch.equal(stored, labels):
        raise DatasetCorrupt(f"{labels_file}: labels differ from the folders'; delete {images}")
    # copy-on-write: torch gets a writable view without the file ever being written
    return torch.from_numpy(np.memmap(images, np.uint8, "c", shape=shape)), labels


def _build(paths: list[Path], out: Path, shape: tuple, workers: int) -> None:
    """Decode every file into `out` (N, 3, SIZE, SIZE) with `workers` processes, via a `.partial`
    file renamed when complete."""
    partial = out.with_name(out.name + ".partial")
    target = np.memmap(partial, np.uint8, "w+", shape=shape)
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    with (
        ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool,
        tqdm(total=len(paths), desc=f"decoding {out.name}", unit="img") as bar,
    ):
        blocks = (pool.map if pool else map)(_decode_chunk, chunks)
        for i, block in enumerate(blocks):
            target[i * CHUNK : i * CHUNK + len(block)] = block
            bar.update(len(block))
    target.flush()
    del target
    os.replace(partial, out)
