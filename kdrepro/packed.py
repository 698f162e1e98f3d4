"""G networks of one architecture trained as one network (grouped-convolution packing, as in HFTA).

A small network leaves a GPU waiting on kernel launches; packed, G of them run every layer as one
kernel over G times the channels. A conv C_in -> C_out becomes G*C_in -> G*C_out with G times its
groups; BatchNorm over G*C channels is per channel, so per network; GroupNorm(k, C) becomes
GroupNorm(G*k, G*C), which normalizes each network's channels alone; a linear layer becomes a
batched matmul over G. Every network sees its own batch: `Packed` takes the G batches stacked as (G,
B, C, H, W) and returns (G, B, classes).

SGD's update is elementwise, so stepping the packed parameters on the sum of the G losses steps each
network on its own loss: the arithmetic is each network's, up to the order of floating-point
reductions inside grouped kernels (tests/test_packed.py bounds the difference over a few steps).
`fit_pack` trains teachers, or students, that way; a pack of students labels its batches with its
teachers packed too, all G*m of them in one network.
"""

import copy
import json
import sys
import time
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import (
    augment,
    data,
    devices,
    errors,
    finish,
    inputs,
    logit_cache,
    predictions,
    schedule,
    train,
)
from .config import RunConfig, StudentConfig
from .errors import ConfigError
from .losses import ensemble_logits, kd_loss
from .models import Ensemble


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
    """The packed form of one layer (uninitialized), or None for a container or a layer without
    parameters."""
    if isinstance(m, nn.Conv2d):
        return nn.Conv2d(
            g * m.in_channels,
            g * m.out_channels,
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            g * m.groups,
            m.bias is not None,
            m.padding_mode,
        )
    if isinstance(m, nn.BatchNorm2d):
        return nn.BatchNorm2d(
            g * m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats
        )
    if isinstance(m, nn.GroupNorm):
        return nn.GroupNorm(g * m.num_groups, g * m.num_channels, m.eps, m.affine)
    if isinstance(m, nn.Linear):
        return GroupedLinear(g, m.in_features, m.out_features)
    if next(m.children(), None) is None and next(m.parameters(recurse=False), None) is not None:
        raise TypeError(
            f"cannot pack a {type(m).__name__} layer: only Conv2d, BatchNorm2d, GroupNorm and "
            "Linear carry parameters in a packable network"
        )
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
        # a member's tensor shapes, for `unpack` (not a member's copy: its parameters would join the
        # optimizer's)
        self.shapes = {key: value.shape for key, value in members[0].state_dict().items()}
        self.net = copy.deepcopy(members[0])
        _repack(self.net, self.groups)
        states = [m.state_dict() for m in members]
        self.net.load_state_dict(
            {
                key: _join([s[key] for s in states], target)
                for key, target in self.net.state_dict().items()
            }
        )

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
        return [
            {key: _part(packed[key], shape, self.groups, i) for key, shape in self.shapes.items()}
            for i in range(self.groups)
        ]


def _join(parts: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    # a step counter (BatchNorm's num_batches_tracked): the members share it
    if target.shape == parts[0].shape:
        return parts[0]
    return torch.stack(parts) if target.dim() == parts[0].dim() + 1 else torch.cat(parts)


def _part(packed: torch.Tensor, shape: torch.Size, groups: int, i: int) -> torch.Tensor:
    if packed.shape == shape:
        return packed.clone()
    return (packed[i] if packed.dim() == len(shape) + 1 else packed.chunk(groups)[i]).clone()


def pack_key(cfg: RunConfig) -> str:
    """Runs with the same key differ only in their seeds, subsets and teachers (of one architecture
    and number), so they can train as one packed network."""
    d = cfg.to_dict()
    for key in ("seed", "subset_seed", "init_seed", "teachers", "control"):
        d.pop(key, None)
    if isinstance(cfg, StudentConfig):
        d["teachers"] = [[t.model, t.width, t.norm] for t in cfg.teachers]
    return json.dumps(d, sort_keys=True)


@cache
def _has_dropout(model: str, dataset: str) -> bool:
    with torch.random.fork_rng(devices=[]):  # building draws weights: leave the caller's RNG alone
        net = inputs.network(model, dataset)
    return any(isinstance(m, nn.Dropout) for m in net.modules())


def unpackable(cfg: RunConfig, device_type: str) -> str | None:
    """Why a run cannot train in a pack on `device_type` (such runs train one by one), or None."""
    if cfg.dataset in data.TEXT:
        return f"{cfg.model} reads variable-length token sequences, which a pack does not batch"
    if cfg.dataset in data.MAPPED:
        return f"{cfg.dataset} is read from disk a batch at a time; a pack holds its sets in memory"
    if _has_dropout(cfg.model, cfg.dataset):
        return f"{cfg.model} has dropout, whose masks a pack cannot draw as each run would"
    if isinstance(cfg, StudentConfig) and (cfg.init != "random" or cfg.surface):
        return (
            f"init={cfg.init!r}, surface={cfg.surface}: a pack trains students from a random init "
            "without loss planes"
        )
    if (
        isinstance(cfg, StudentConfig)
        and len({(t.model, t.width, t.norm) for t in cfg.teachers}) > 1
    ):
        return (
            "its teachers differ in architecture: they cannot be packed into one labelling network"
        )
    if isinstance(cfg, StudentConfig) and logit_cache.pays(cfg):
        return (
            "its teachers' labels come from a logit cache (logit_cache), which packs do not build"
        )
    return None


def _check_pack(cfgs: list[RunConfig], device_type: str) -> None:
    if len({pack_key(c) for c in cfgs}) != 1 or len({type(c) for c in cfgs}) != 1:
        raise ConfigError(
            "fit_pack: a pack needs runs of one recipe, differing only in seeds, subsets and "
            "teachers"
        )
    for cfg in cfgs:
        if (why := unpackable(cfg, device_type)) is not None:
            raise ConfigError(f"fit_pack: {cfg.describe()}: {why}; train it without --pack")


def fit_pack(
    cfgs: list[RunConfig],
    device: torch.device,
    teachers: list[Ensemble] | None = None,
    controls: list[Ensemble | None] | None = None,
    progress: bool = True,
) -> list["train.Trained | errors.TrainingFailed"]:
    """Train G runs of one recipe (`pack_key`) as one packed network: each on its own subset,
    batches and augmentations, exactly as `train.fit` draws them; one optimizer step over the sum of
    their losses steps each on its own. Students (with `teachers[k]`, and `controls[k]` or None, for
    run k) are labelled by all their teachers packed into one eval-mode network. The arithmetic
    differs from G separate runs only in the order of sums inside grouped kernels
    (tests/test_packed.py bounds it). A member whose loss diverges or that learns nothing is
    returned as its TrainingFailed, the others as usual (a NaN stays in its own member's weights: no
    kernel mixes members). A pack is not checkpointed: killed, it restarts (packs are for short GPU
    runs); each member's wall and CPU times are its shares of the pack's."""
    _check_pack(cfgs, device.type)
    nets = [inputs.new_model(c) for c in cfgs]
    cfg, g, distill = cfgs[0], len(cfgs), teachers is not None
    if distill != isinstance(cfg, StudentConfig):
        raise ValueError("fit_pack: students need their teachers, teachers none")
    sets = [tuple(t.to(device) for t in inputs.training_set(c)) for c in cfgs]
    test_x, test_y = inputs.test_set(cfg, device)
    model = Packed(nets).to(device, memory_format=torch.channels_last)
    if distill:
        m = len(cfg.teachers)
        labeller = Packed([net for t in teachers for net in t.members]).to(
            device, memory_format=torch.channels_last
        )
        labeller.eval()
        teacher_test = [predictions.predict(t, test_x, device) for t in teachers]
        control_test = [
            predictions.predict(c, test_x, device) if c is not None else None
            for c in controls or [None] * g
        ]
    forward, labeller = (
        devices.compiled(model, device),
        devices.compiled(labeller, device) if distill else None,
    )
    opt = schedule.optimizer(cfg, model.parameters(), cfg.lr)
    aug, evals = augment.make(cfg.augment, cfg.crop_pad), schedule.eval_steps(cfg.steps, cfg.evals)
    streams = [
        inputs.batches(x, inputs.run_indices(c, len(x)), aug, torch.Generator().manual_seed(c.seed))
        for c, (x, _) in zip(cfgs, sets)
    ]
    loss_sum, hits, seen = torch.zeros(g, device=device), torch.zeros(g, device=device), 0
    curves, t0, c0 = [[] for _ in cfgs], time.perf_counter(), time.process_time()
    failed: dict[int, errors.TrainingFailed] = {}
    # per-step bars only on a terminal
    for step in tqdm(
        range(cfg.steps),
        desc=f"pack of {g} {cfg.kind}s",
        leave=False,
        unit="step",
        disable=not progress or not sys.stderr.isatty(),
    ):
        drawn = [next(s) for s in streams]
        xb = torch.stack([x for _, x, _ in drawn])
        labels = torch.stack([y[idx] for (idx, _, _), (_, y) in zip(drawn, sets)])

        def loss_of(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if not distill:
                return (
                    F.cross_entropy(out.flatten(0, 1), labels.flatten(), reduction="none")
                    .view(g, -1)
                    .mean(1),
                    labels,
                )
            with torch.no_grad():
                z = labeller(xb.repeat_interleave(m, 0)).float().unflatten(0, (g, m))
                target = torch.stack([ensemble_logits(z[k]) for k in range(g)])
            alpha = cfg.alpha_at(step)
            return torch.stack(
                [
                    kd_loss(
                        out[k], target[k], cfg.temperature, alpha, labels[k] if alpha > 0 else None
                    )
                    for k in range(g)
                ]
            ), target.argmax(2)

        losses, out, target = train.take_step(
            model, forward, opt, schedule.lr_at(cfg, cfg.lr, step), xb, device, loss_of
        )
        loss_sum += losses * cfg.batch_size
        hits += (out.argmax(-1) == target).sum(-1)
        seen += cfg.batch_size
        if step + 1 in evals:
            for k, (c, net, state) in enumerate(zip(cfgs, nets, model.unpack())):
                if k in failed:
                    continue
                net.load_state_dict(state)
                pred = predictions.predict(
                    net.to(device, memory_format=torch.channels_last), test_x, device
                )
                test = (
                    predictions.evaluate(pred, test_y, teacher_test[k], control_test[k])
                    if distill
                    else predictions.evaluate(pred, test_y)
                )
                try:
                    curves[k].append(
                        train.evaluation(
                            c,
                            step + 1,
                            len(sets[k][0]),
                            loss_sum[k].item() / seen,
                            hits[k].item() / seen,
                            test,
                        )
                    )
                except errors.TrainingFailed as e:
                    failed[k] = e
            loss_sum.zero_()
            hits.zero_()
            seen = 0
    share, cpu_share = (
        round((time.perf_counter() - t0) / g, 2),
        round((time.process_time() - c0) / g, 2),
    )
    out = []
    for k, (c, net, curve) in enumerate(zip(cfgs, nets, curves)):
        final, deviations = (dict(curve[-1]) if k not in failed else {}), None
        try:
            if k in failed:
                raise failed[k]
            if distill:
                _, deviations = finish.finish_student(
                    c, net, teachers[k], sets[k], (test_x, test_y), device, final
                )
            else:
                finish.finish_teacher(net, *sets[k], device, final)
        except errors.TrainingFailed as e:
            out.append(e)
            continue
        out.append(
            train.Trained(
                final,
                curve,
                predictions.evaluate(teacher_test[k], test_y) if distill else None,
                {key: v.detach().cpu() for key, v in net.state_dict().items()},
                share,
                cpu_share,
                packed=g,
                deviations=deviations,
            )
        )
    return out
