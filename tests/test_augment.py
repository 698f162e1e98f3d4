"""The on-device augmentations against torchvision's per-image transforms."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from kdrepro import augment, data


@pytest.fixture
def images():
    return torch.randint(
        0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


def test_crop_matches_torchvision_pixel_for_pixel(images):
    # RandomCrop(32, padding=4) pads with zeros and cuts at (top, left) in {0..8}^2; then hflip or
    # not.
    for top in range(9):
        for left in range(9):
            ours = augment.crop_at(
                images[:2], 4, torch.tensor([top, top]), torch.tensor([left, left])
            )
            ref = TF.crop(
                TF.pad(images[:2], [4], fill=0, padding_mode="constant"), top, left, 32, 32
            )
            assert torch.equal(ours, ref)
    assert torch.equal(images.flip(3), TF.horizontal_flip(images))


def test_zero_padding_not_reflect(images):
    out = augment.crop_at(images[:1], 4, torch.tensor([0]), torch.tensor([0]))
    assert (out[0, :, :4, :] == 0).all() and (out[0, :, :, :4] == 0).all()
    reflect = TF.crop(TF.pad(images[:1], [4], padding_mode="reflect"), 0, 0, 32, 32)
    assert not torch.equal(out, reflect)


def test_all_81x2_crop_flip_cases_uniform():
    n = 81 * 2 * 300
    g = torch.Generator().manual_seed(1)
    top, left = augment.crop_offsets(n, 4, g)
    flips = torch.rand(n, generator=g) < 0.5
    counts = torch.bincount(top * 18 + left * 2 + flips.long(), minlength=162).float()
    assert counts.min() > 0
    expected = n / 162
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 220  # 161 degrees of freedom: the 99.9% quantile is about 221


def test_policies_shapes_range_and_determinism(images):
    for name in augment.POLICIES:
        f = augment.make(name)
        a, _ = f(images, torch.Generator().manual_seed(3))
        b, _ = f(images, torch.Generator().manual_seed(3))
        assert a.shape == images.shape and a.dtype == torch.float32
        assert torch.equal(a, b), name
        assert a.min() >= -1 and a.max() <= 1, name


def test_none_policy_is_unitcube(images):
    out, views = augment.make("none")(images, torch.Generator())
    assert views is None
    assert torch.allclose(out, images.float() / 127.5 - 1)


def test_rotation_zero_angle_identity_and_vflip(images):
    x = images.float() / 255
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(augment.rotate(x, g, degrees=0.0), x)
    out = augment.vflip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(2)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped | kept).all() and flipped.any() and kept.any()


def test_hue_shift_round_trip_and_gray_invariance(images):
    x = images.float() / 255
    assert torch.allclose(augment._shift_hue(x, torch.zeros(len(x))), x, atol=1e-5)
    assert torch.allclose(augment._shift_hue(x, torch.ones(len(x))), x, atol=1e-5)
    gray = x[:, :1].expand(-1, 3, -1, -1)
    assert torch.allclose(augment._shift_hue(gray, torch.full((len(x),), 0.3)), gray, atol=1e-5)
    ref = TF.adjust_hue(x[:4], 0.1)
    assert torch.allclose(augment._shift_hue(x[:4], torch.full((4,), 0.1)), ref, atol=1e-4)


def test_mixup_one_lambda_per_batch_and_noise_rate():
    x = torch.stack([torch.full((1, 2, 2), -1.0), torch.full((1, 2, 2), 1.0)])
    out = augment.mixup(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out.sum(0), x.sum(0))  # lam*x + (1-lam)*x[perm] preserves the batch sum
    assert torch.allclose(out[0].flatten()[0].expand(4), out[0].flatten())
    z = torch.zeros(4000, 1, 2, 2)
    noisy = (
        (augment.uniform_noise(z, torch.Generator().manual_seed(0)) != 0)
        .flatten(1)
        .any(1)
        .float()
        .mean()
    )
    assert abs(noisy.item() - 0.2) < 0.03


def test_unknown_policy_error():
    with pytest.raises(ValueError, match="augment='autoaugment': expected one of"):
        augment.make("autoaugment")


@pytest.mark.parametrize("policy, pad", [("crop", 2), ("crop_flip", 4)])
def test_view_ids_give_the_crop_and_flip_chain_and_its_draws(images, policy, pad):
    """`make` draws crop + flip as view ids; the images and the generator's state after are those of
    RandomCrop followed by RandomHorizontalFlip, and every id is one of `view_count`."""
    g, ref = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    out, views = augment.make(policy, pad)(images, g)
    chain = augment.random_crop(images, ref, pad)
    chain = augment.hflip(chain, ref) if policy == "crop_flip" else chain
    assert torch.equal(out, chain.float() / 255 * 2 - 1) and torch.equal(out, data.unitcube(chain))
    assert torch.equal(g.get_state(), ref.get_state())
    count = augment.view_count(policy, pad)
    assert count == (2 * pad + 1) ** 2 * (2 if policy == "crop_flip" else 1)
    assert views.min() >= 0 and views.max() < count
    every = torch.arange(count)
    assert (
        len(
            {
                augment.at_views(images[:1].expand(count, -1, -1, -1), policy, pad, every)[k]
                .numpy()
                .tobytes()
                for k in range(count)
            }
        )
        == count
    )  # each id is its own view


def test_continuous_policies_have_no_view_ids():
    assert [p for p in augment.POLICIES if augment.view_count(p, 4)] == ["crop", "crop_flip"]
