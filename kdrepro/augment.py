"""Augmentation policies as batched tensor ops on the training device (the paper's Fig. 3 policies,
App. A.1).

Each op draws one random setting per image from an explicit `torch.Generator`, so a run's
augmentations are reproducible and its generator state can be checkpointed. Geometric and colour ops
work on floats in [0, 1] (zero fill = black, as torchvision does on PIL images); mixup and noise act
after the paper's `unitcube` normalization, on [-1, 1].
"""

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from .errors import ConfigError

Op = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=g) * (high - low) + low).to(device)


def _coin(n: int, p: float, g: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=g) < p).to(device)


def crop_offsets(n: int, pad: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners of n random crops of a zero-padded image: each in {0, ..., 2*pad}, like
    RandomCrop."""
    return torch.randint(0, 2 * pad + 1, (n,), generator=g), torch.randint(
        0, 2 * pad + 1, (n,), generator=g
    )


def crop_at(x: torch.Tensor, pad: int, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """Crop each image of x (N, C, H, W) at its own offset from the image zero-padded by `pad`."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (top.to(x.device)[:, None] + torch.arange(h, device=x.device))[:, :, None]  # N, H, 1
    cols = (left.to(x.device)[:, None] + torch.arange(w, device=x.device))[:, None, :]  # N, 1, W
    return padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(
        0, 3, 1, 2
    )


def view_count(policy: str, pad: int) -> int | None:
    """How many distinct augmented versions ("views") of an image `policy` can make: (2 pad + 1)^2
    crops, twice that with flips; None for policies with continuous or batch-dependent draws."""
    return {"crop": 1, "crop_flip": 2}.get(policy, 0) * (2 * pad + 1) ** 2 or None


def draw_views(n: int, policy: str, pad: int, g: torch.Generator) -> torch.Tensor:
    """n view ids of `policy` (crop or crop_flip), drawn from g as RandomCrop then
    RandomHorizontalFlip draw: the crop's top and left, then the flip."""
    top, left = crop_offsets(n, pad, g)
    flips = view_count(policy, pad) // (2 * pad + 1) ** 2
    flip = _coin(n, 0.5, g, "cpu").long() if flips == 2 else torch.zeros(n, dtype=torch.long)
    return (top * (2 * pad + 1) + left) * flips + flip


def at_views(x: torch.Tensor, policy: str, pad: int, views: torch.Tensor) -> torch.Tensor:
    """The uint8 images x (N, C, H, W) at their view ids (`draw_views`): cropped, flipped when the
    id says so, and normalized to [-1, 1] as every policy's output."""
    flips = view_count(policy, pad) // (2 * pad + 1) ** 2
    views = views.to(x.device)
    crop, flip = views // flips, (views % flips).bool()
    x = crop_at(x, pad, crop // (2 * pad + 1), crop % (2 * pad + 1))
    return torch.where(flip[:, None, None, None], x.flip(3), x).float() / 255 * 2 - 1


def random_crop(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    return crop_at(x, pad, *crop_offsets(len(x), pad, g))


def random_resized_crop(
    x: torch.Tensor,
    g: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    tries: int = 10,
) -> torch.Tensor:
    """RandomResizedCrop back to the images' own size, boxes drawn as torchvision draws them: up to
    `tries` of an area uniform in `scale` (of the image's) and an aspect ratio log-uniform in
    `ratio`, the first that fits, else the whole image (torchvision's fallback for a square image;
    kdrepro's ImageNet images are square), at a uniform position. Each box is resampled bilinearly
    (`roi_align`, one sample per output pixel); a box is never larger than the output, so nothing
    is downsampled and torchvision's antialiasing would not apply."""
    n, _, h, w = x.shape
    area = h * w * (torch.rand(n, tries, generator=g) * (scale[1] - scale[0]) + scale[0])
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = (torch.rand(n, tries, generator=g) * (high - low) + low).exp()
    cw, ch = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = fits.float().argmax(1, keepdim=True)  # the first try that fits (0 where none does)
    cw = torch.where(fits.any(1), cw.gather(1, first)[:, 0], float(w))
    ch = torch.where(fits.any(1), ch.gather(1, first)[:, 0], float(h))
    top = (torch.rand(n, generator=g) * (h - ch + 1)).floor()
    left = (torch.rand(n, generator=g) * (w - cw + 1)).floor()
    boxes = torch.stack([torch.arange(n).float(), left, top, left + cw, top + ch], 1)
    return roi_align(x, boxes.to(x), (h, w), spatial_scale=1.0, sampling_ratio=1, aligned=True)


def hflip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.where(_coin(len(x), 0.5, g, x.device)[:, None, None, None], x.flip(3), x)


def vflip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.where(_coin(len(x), 0.5, g, x.device)[:, None, None, None], x.flip(2), x)


def rotate(x: torch.Tensor, g: torch.Generator, degrees: float = 20.0) -> torch.Tensor:
    """RandomRotation(degrees): an angle in [-degrees, degrees] per image, nearest neighbour, black
    fill."""
    a = _uniform(len(x), -degrees, degrees, g, x.device) * (math.pi / 180)
    cos, sin, zero = a.cos(), a.sin(), torch.zeros_like(a)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `shift` (fraction of a turn, one per image) through an RGB -> HSV -> RGB round
    trip."""
    r, gr, b = x.unbind(1)
    maxc, minc = x.max(1).values, x.min(1).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(
        maxc == r,
        ((gr - b) / safe) % 6,
        torch.where(maxc == gr, (b - r) / safe + 2, (r - gr) / safe + 4),
    )
    h = torch.where(delta > 0, h / 6, torch.zeros_like(h))
    h = (h + shift[:, None, None]) % 1.0
    s = torch.where(
        maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc)
    )
    k = lambda n: (n + h * 6) % 6  # noqa: E731 - the standard HSV -> RGB closed form
    f = lambda n: maxc - maxc * s * torch.clamp(torch.minimum(k(n), 4 - k(n)), 0, 1)  # noqa: E731
    return torch.stack([f(5), f(3), f(1)], 1)


def color_jitter(x: torch.Tensor, g: torch.Generator, strength: float = 0.2) -> torch.Tensor:
    """ColorJitter(b=c=s=h=strength), factors drawn per image, applied in a fixed order (b, c, s,
    h).

    torchvision permutes the four ops randomly per image; the fixed order is a documented
    simplification."""
    n, dev = len(x), x.device
    view = lambda t: t[:, None, None, None]  # noqa: E731
    x = (x * view(_uniform(n, 1 - strength, 1 + strength, g, dev))).clamp(0, 1)
    mean = _gray(x).mean((1, 2, 3), keepdim=True)
    x = ((x - mean) * view(_uniform(n, 1 - strength, 1 + strength, g, dev)) + mean).clamp(0, 1)
    if x.shape[1] == 3:
        gray = _gray(x)
        x = ((x - gray) * view(_uniform(n, 1 - strength, 1 + strength, g, dev)) + gray).clamp(0, 1)
        x = _shift_hue(x, _uniform(n, -strength, strength, g, dev))
    return x


def mixup(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mix the whole batch with a permutation of itself, one lambda ~ U[0, 1] per batch (the paper's
    MixUp)."""
    lam = torch.rand((), generator=g).item()
    perm = torch.randperm(len(x), generator=g).to(x.device)
    return lam * x + (1 - lam) * x[perm]


def uniform_noise(x: torch.Tensor, g: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """Replace each image, with probability p, by pixel-wise uniform noise on [-1, 1]."""
    noise = (torch.rand(x.shape, generator=g) * 2 - 1).to(x.device, x.dtype)
    return torch.where(_coin(len(x), p, g, x.device)[:, None, None, None], noise, x)


# name -> (ops on [0, 1] images, ops on normalized images). Every policy but "none"/"crop" adds to
# crop + flip.
POLICIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "none": ((), ()),
    "crop": (("crop",), ()),
    "crop_flip": (("crop", "hflip"), ()),
    "rotation": (("rotate", "crop", "hflip"), ()),
    "vflip": (("vflip", "crop", "hflip"), ()),
    "color_jitter": (("color_jitter", "crop", "hflip"), ()),
    "combined": (("rotate", "vflip", "color_jitter", "crop", "hflip"), ()),
    "mixup": (("crop", "hflip"), ("mixup",)),
    "noise": (("crop", "hflip"), ("noise",)),
    "rrc_flip": (("resized_crop", "hflip"), ()),  # ImageNet's (App. A.3 does not state it)
}


Augment = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor | None]]


def make(policy: str, pad: int = 4) -> Augment:
    """A function (uint8 batch, generator) -> (augmented float batch in [-1, 1], each image's view
    id or None) for the named policy; view ids (`draw_views`) exist for the policies with finitely
    many views (`view_count`)."""
    if policy not in POLICIES:
        raise ConfigError(f"augment={policy!r}: expected one of {sorted(POLICIES)}")
    if view_count(policy, pad):

        def viewed(x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            views = draw_views(len(x), policy, pad, g)
            return at_views(x, policy, pad, views), views

        return viewed
    ops: dict[str, Op] = {
        "crop": partial(random_crop, pad=pad),
        "resized_crop": random_resized_crop,
        "hflip": hflip,
        "vflip": vflip,
        "rotate": rotate,
        "color_jitter": color_jitter,
        "mixup": mixup,
        "noise": uniform_noise,
    }
    before, after = ([ops[o] for o in names] for names in POLICIES[policy])

    # Crops and flips move pixels without changing them, so they run on uint8 (4x less memory
    # traffic).
    lead = next(
        (i for i, name in enumerate(POLICIES[policy][0]) if name not in ("crop", "hflip", "vflip")),
        len(before),
    )

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if x.dtype != torch.uint8:  # token ids, which only policy "none" takes (the run's config)
            return x.long(), None
        for op in before[:lead]:
            x = op(x, g)
        x = x.float() / 255
        for op in before[lead:]:
            x = op(x, g)
        x = x * 2 - 1  # the paper's unitcube normalization, on floats already in [0, 1]
        for op in after:
            x = op(x, g)
        return x, None

    return apply
