"""G networks of one architecture trained as one network (grouped-convolution packing, as in HFTA).

A small network leaves a GPU waiting on kernel launches; packed, G of them run every layer as one kernel over G times
the channels. A conv C_in -> C_out becomes G*C_in -> G*C_out with G times its groups; BatchNorm over G*C channels
is per channel, so per network; GroupNorm(k, C) becomes GroupNorm(G*k, G*C), which normalizes each network's channels
alone; a linear layer becomes a batched matmul over G. Every network sees its own batch: `Packed` takes the G batches
stacked as (G, B, C, H, W) and returns (G, B, classes).

SGD's update is elementwise, so stepping the packed parameters on the sum of the G losses steps each network on its
own loss: the arithmetic is each network's, up to the order of floating-point reductions inside grouped kernels
(tests/test_packed.py bounds the difference over a few steps).
"""

import copy

import torch
from torch import nn


class GroupedLinear(nn.Module):
    """G linear layers on the G consecutive blocks of a (B, G * in_features) input."""

    def __init__(self, groups: int, in_features: int, out_features: int):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.groups, -1)
        return (torch.einsum("bgi,goi->bgo", x, self.weight) + self.bias).flatten(1)


def _packed_layer(m: nn.Module, g: int) -> nn.Module | None:
    """The packed form of one layer (uninitialized), or None for a container or a layer without parameters."""
    if isinstance(m, nn.Conv2d):
        return nn.Conv2d(g * m.in_channels, g * m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                         g * m.groups, m.bias is not None, m.padding_mode)
    if isinstance(m, nn.BatchNorm2d):
        return nn.BatchNorm2d(g * m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    if isinstance(m, nn.GroupNorm):
        return nn.GroupNorm(g * m.num_groups, g * m.num_channels, m.eps, m.affine)
    if isinstance(m, nn.Linear):
        return GroupedLinear(g, m.in_features, m.out_features)
    if next(m.children(), None) is None and next(m.parameters(recurse=False), None) is not None:
        raise TypeError(f"cannot pack a {type(m).__name__} layer: only Conv2d, BatchNorm2d, GroupNorm and Linear "
                        "carry parameters in a packable network")
    return None


def _repack(module: nn.Module, g: int) -> None:
    for name, child in module.named_children():
        layer = _packed_layer(child, g)
        if layer is not None:
            setattr(module, name, layer)
        else:
            _repack(child, g)


class Packed(nn.Module):
    """G networks of the architecture of `members[0]`, with the members' weights and buffers."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("Packed needs at least one member")
        self.groups = len(members)
        # a member's tensor shapes, for `unpack` (not a member's copy: its parameters would join the optimizer's)
        self.shapes = {key: value.shape for key, value in members[0].state_dict().items()}
        self.net = copy.deepcopy(members[0])
        _repack(self.net, self.groups)
        states = [m.state_dict() for m in members]
        self.net.load_state_dict({key: _join([s[key] for s in states], target)
                                  for key, target in self.net.state_dict().items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(G, B, C, H, W) -> (G, B, classes): member g's logits on its own batch x[g]."""
        g, b = x.shape[:2]
        if g != self.groups:
            raise ValueError(f"expected batches for {self.groups} networks, got {g}")
        out = self.net(x.transpose(0, 1).reshape(b, g * x.shape[2], *x.shape[3:]))
        return out.reshape(b, g, -1).transpose(0, 1)

    def unpack(self) -> list[dict[str, torch.Tensor]]:
        """Each member's state dict, as the unpacked architecture names and shapes it."""
        packed = self.net.state_dict()
        return [{key: _part(packed[key], shape, self.groups, i) for key, shape in self.shapes.items()}
                for i in range(self.groups)]


def _join(parts: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    if target.shape == parts[0].shape:  # a step counter (BatchNorm's num_batches_tracked): the members share it
        return parts[0]
    return torch.stack(parts) if target.dim() == parts[0].dim() + 1 else torch.cat(parts)


def _part(packed: torch.Tensor, shape: torch.Size, groups: int, i: int) -> torch.Tensor:
    if packed.shape == shape:
        return packed.clone()
    return (packed[i] if packed.dim() == len(shape) + 1 else packed.chunk(groups)[i]).clone()
