"""The paper's networks: PreResNet (BatchNorm or LayerNorm), LeNet-5, VGG-16 without BN, the
bidirectional LSTM of its text experiments, and ensembles.

Architectures follow the paper's App. A.2 (the official code's `preresnet.py`, `lenet.py`,
`vgg.py`); `build` is the one entry point. Names: `preresnet{d}` (basic blocks for d < 44,
bottleneck for d >= 44, as in the paper), `preresnet{d}_basic` (basic blocks at any depth: the
"ResNet-56" of most other KD papers), `lenet5`, `vgg16`, `bilstm` (token ids in, not images),
`resnet50` (ImageNet's, App. A.2: torchvision's ResNet-50, which the paper's ImageNet code, not in
the official repository, presumably used).
"""

import math
import re

import torch
import torchvision
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .errors import ConfigError
from .losses import ensemble_logits

NORMS = ("batch", "layer")
FIXED = ("bilstm", "resnet50")  # networks without a norm or width to set


def _norm(kind: str, channels: int) -> nn.Module:
    # LayerNorm over (C, H, W) of each example: GroupNorm with a single group, as in the paper's LN
    # ResNet.
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(1, channels)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, norm: str):
        super().__init__()
        self.bn1, self.conv1 = (
            _norm(norm, inplanes),
            nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False),
        )
        self.bn2, self.conv2 = _norm(norm, planes), nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = _shortcut(inplanes, planes, stride)

    def forward(self, x):
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + self.shortcut(x)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, norm: str):
        super().__init__()
        self.bn1, self.conv1 = _norm(norm, inplanes), nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn2, self.conv2 = (
            _norm(norm, planes),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
        )
        self.bn3, self.conv3 = _norm(norm, planes), nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.shortcut = _shortcut(inplanes, planes * 4, stride)

    def forward(self, x):
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        out = self.conv3(torch.relu(self.bn3(out)))
        return out + self.shortcut(x)


def _shortcut(inplanes: int, outplanes: int, stride: int) -> nn.Module:
    # The paper's code downsamples with a bare 1x1 conv (no norm layer).
    if stride == 1 and inplanes == outplanes:
        return nn.Identity()
    return nn.Conv2d(inplanes, outplanes, 1, stride, bias=False)


class PreResNet(nn.Module):
    """Pre-activation ResNet for 32x32 images: a 16-channel stem, three stages of 16/32/64 (x width)
    planes."""

    def __init__(
        self,
        depth: int,
        num_classes: int,
        norm: str = "batch",
        width: int = 1,
        in_channels: int = 3,
        bottleneck: bool | None = None,
    ):
        super().__init__()
        bottleneck = depth >= 44 if bottleneck is None else bottleneck
        block, per_block = (Bottleneck, 9) if bottleneck else (BasicBlock, 6)
        if (depth - 2) % per_block or depth < 2 + per_block:
            raise ConfigError(
                f"preresnet depth={depth}: must be {per_block}n+2 with n >= 1 for "
                f"{'bottleneck' if bottleneck else 'basic'} blocks (e.g. 8, 20, 56, 110)"
            )
        n = (depth - 2) // per_block
        self.inplanes = 16 * width
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, 3, 1, 1, bias=False)
        self.layer1 = self._stage(block, 16 * width, n, 1, norm)
        self.layer2 = self._stage(block, 32 * width, n, 2, norm)
        self.layer3 = self._stage(block, 64 * width, n, 2, norm)
        self.bn = _norm(norm, self.inplanes)
        self.fc = nn.Linear(self.inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He init as in the paper's code: N(0, 2 / (k*k*C_out))
                nn.init.normal_(
                    m.weight,
                    0.0,
                    math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)),
                )
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, block, planes: int, n: int, stride: int, norm: str) -> nn.Sequential:
        layers = []
        for i in range(n):
            layers.append(block(self.inplanes, planes, stride if i == 0 else 1, norm))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the three stages (pre-activations, before the final norm-ReLU): CKA's
        features."""
        x1 = self.layer1(self.conv1(x))
        x2 = self.layer2(x1)
        return [x1, x2, self.layer3(x2)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stages(x)[-1]))
        return self.fc(x.mean((2, 3)))  # global average pooling == AvgPool(8) on 32x32 inputs


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and average pooling; `image_size` fixes the flattened feature size (400 on
    28x28)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
        )
        side = (image_size // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Linear(16 * side * side, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """VGG-16 without BatchNorm, with the paper's 512-512 dropout classifier (32x32 inputs)."""

    def __init__(self, num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        layers, c = [], in_channels
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(
                    m.weight,
                    0.0,
                    math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)),
                )
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BiLSTM(nn.Module):
    """The paper's IMDB network (App. A.2): 128-dimensional embeddings, a 2-layer bidirectional LSTM
    of 70 cells, and a linear head on the last layer's final hidden states of both directions.
    Sequences are padded at the end with token 0, which the LSTM skips (packed sequences), so the
    forward direction ends at each review's last word."""

    def __init__(self, vocab: int, num_classes: int = 2, embed: int = 128, hidden: int = 70):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = (x != 0).sum(1).clamp(min=1).cpu()  # an empty review reads one padding token
        # in float32 even under the loop's bf16 autocast on a GPU: autocast runs cuDNN's LSTM in
        # fp16, and the loop has no loss scaling
        with torch.autocast(x.device.type, enabled=False):
            seqs = pack_padded_sequence(
                self.embed(x).float(), lengths, batch_first=True, enforce_sorted=False
            )
            _, (h, _) = self.lstm(seqs)
        return self.fc(torch.cat([h[-2], h[-1]], 1))


class Ensemble(nn.Module):
    """m networks whose combined logit is log((1/m) sum_i softmax(z_i)), the paper's ensemble
    teacher."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("Ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ensemble_logits(torch.stack([m(x) for m in self.members]))


_PRERESNET = re.compile(r"preresnet(\d+)(_basic)?")


def has_stages(name: str) -> bool:
    """Whether the network `name` builds has `stages` (the PreResNets)."""
    return bool(_PRERESNET.fullmatch(name))


def check_name(name: str) -> None:
    """Raise a one-line ValueError unless `name` is a model `build` knows."""
    if name not in ("lenet5", "vgg16", *FIXED) and not _PRERESNET.fullmatch(name):
        raise ConfigError(
            f"model={name!r}: expected 'preresnet<depth>', 'preresnet<depth>_basic', 'lenet5', "
            "'vgg16', 'bilstm' or 'resnet50'"
        )


def build(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    norm: str = "batch",
    width: int = 1,
    image_size: int = 32,
    vocab: int | None = None,
) -> nn.Module:
    """Build a network by name (see the module docstring). `norm` and `width` apply to PreResNets
    only; `vocab` (token ids) to `bilstm` alone, which needs it."""
    check_name(name)
    if norm not in NORMS:
        raise ConfigError(f"norm={norm!r}: expected one of {NORMS}")
    if name == "bilstm":
        if vocab is None:
            raise ConfigError("model='bilstm' reads token ids: give its vocabulary size (vocab)")
        return BiLSTM(vocab, num_classes)
    if name == "lenet5":
        return LeNet5(num_classes, in_channels, image_size)
    if name == "vgg16":
        return VGG16(num_classes, in_channels)
    if name == "resnet50":
        return torchvision.models.resnet50(num_classes=num_classes)
    depth, basic = _PRERESNET.fullmatch(name).groups()
    return PreResNet(
        int(depth), num_classes, norm, width, in_channels, bottleneck=False if basic else None
    )


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
