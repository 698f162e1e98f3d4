"""Architectures: parameter counts from the paper's App. A.2 and the official code, normalization
choice, ensembles."""

import math

import pytest
import torch
from torch import nn

from kdrepro import models


@pytest.mark.parametrize(
    "name, classes, expected",
    [
        ("preresnet20", 100, 278_132),  # the paper: 0.278M
        ("preresnet56", 100, 613_556),  # bottleneck, the paper: 0.614M
        ("preresnet110", 100, 1_169_972),  # the paper: 1.17M
        ("vgg16", 100, 15_291_300),  # the paper: about 15.3M
    ],
)
def test_parameter_counts(name, classes, expected):
    assert models.num_params(models.build(name, classes)) == expected


def test_lenet5_parameter_count_by_hand():
    # conv 1*6*25+6, conv 6*16*25+16, fc 400*120+120, 120*84+84, 84*10+10
    expected = 156 + 2416 + 48120 + 10164 + 850
    assert expected == 61_706
    assert models.num_params(models.build("lenet5", 10, in_channels=1, image_size=28)) == expected
    three = models.build("lenet5", 10, in_channels=3, image_size=32)
    assert three(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_preresnet56_is_bottleneck_and_basic_variant_differs():
    assert isinstance(models.build("preresnet56", 10).layer1[0], models.Bottleneck)
    basic = models.build("preresnet56_basic", 10)
    assert isinstance(basic.layer1[0], models.BasicBlock) and len(basic.layer1) == 9
    assert isinstance(models.build("preresnet20", 10).layer1[0], models.BasicBlock)


def test_layernorm_nets_have_no_batchnorm():
    net = models.build("preresnet20", 100, norm="layer")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    gns = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert gns and all(m.num_groups == 1 and m.affine for m in gns)
    x = torch.randn(3, 3, 32, 32)
    net.train()
    a = net(x)
    net.eval()
    assert torch.allclose(a, net(x), atol=1e-5)  # no running statistics: train and eval modes agree


def test_width_and_stage_shapes():
    net = models.build("preresnet20", 10, width=2)
    shapes = [s.shape for s in net.stages(torch.zeros(2, 3, 32, 32))]
    assert shapes == [(2, 32, 32, 32), (2, 64, 16, 16), (2, 128, 8, 8)]


def test_init_follows_paper():
    net = models.build("preresnet20", 10)
    conv = net.layer2[0].conv1
    std = math.sqrt(2 / (9 * conv.out_channels))
    assert abs(conv.weight.std().item() - std) < 0.1 * std
    assert torch.equal(net.bn.weight, torch.ones(64)) and torch.equal(net.bn.bias, torch.zeros(64))


def test_ensemble_is_log_mean_softmax():
    torch.manual_seed(0)
    members = [models.build("lenet5", 10, in_channels=1, image_size=28) for _ in range(3)]
    x = torch.randn(5, 1, 28, 28)
    out = models.Ensemble(members)(x)
    mean_p = torch.stack([m(x).softmax(1) for m in members]).mean(0)
    assert torch.allclose(out.exp(), mean_p, atol=1e-6)
    assert torch.allclose(out.exp().sum(1), torch.ones(5))


def test_bad_names_and_depths():
    with pytest.raises(ValueError, match="model='resnet18'"):
        models.build("resnet18", 10)
    with pytest.raises(ValueError, match="depth=21"):
        models.build("preresnet21", 10)
    with pytest.raises(ValueError, match="norm='instance'"):
        models.build("preresnet20", 10, norm="instance")
