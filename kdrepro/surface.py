"""Fig. 6c: the distillation loss on the plane through a teacher, a student's initial weights and
its final weights.

The plane's basis is Gram-Schmidt of (final - teacher, init - teacher) over all parameters, so the
teacher sits at (0, 0), the final student at (d, 0) and the initial student at (b, c), c > 0. The
grid spans the three points with a margin of a quarter of each span on every side, `n` points per
axis. The loss is the student's training objective (the tau^2-scaled cross-entropy to the teacher's
tempered predictions) on un-augmented distillation images, in eval mode. Only LayerNorm networks
qualify: a BatchNorm net's statistics would have to be re-estimated at every point.

Whether the student ended in the teacher's basin is read off the straight path from the teacher to
the final student, sampled at PATH points: its `barrier` is the highest loss on the path above the
student's own, as a fraction of the student's excess loss over the teacher's (the teacher's loss is
the minimum, its own entropy). 0: the loss falls all the way from the student to the teacher, one
basin; 0.5: a ridge half as high again as the student's whole gap to the teacher.
"""

import torch
from torch import nn

from . import data
from .losses import kd_loss

MARGIN = 0.25  # the grid extends this fraction of each span beyond the three points
PATH = 25  # points on the straight path from the teacher to the final student, both ends included
MIN_SIDE = 5  # the fewest grid points per axis


def _flat(model: nn.Module) -> torch.Tensor:
    """All parameters as one float64 vector (reshape, not view: channels-last weights are not
    contiguous)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()


@torch.no_grad()
def _loss(
    model: nn.Module,
    theta: torch.Tensor,
    x: torch.Tensor,
    target: torch.Tensor,
    tau: float,
    batch_size: int = 1000,
) -> float:
    """The mean distillation loss of `model` with parameters `theta` (a flat vector)."""
    i = 0
    for p in model.parameters():
        p.copy_(theta[i : i + p.numel()].view(p.shape))
        i += p.numel()
    total = 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size]).float()
        total += kd_loss(logits, target[i : i + batch_size], tau).item() * len(logits)
    return total / len(x)


def _axis(lo: float, hi: float, n: int) -> torch.Tensor:
    span = hi - lo
    return torch.linspace(lo - MARGIN * span, hi + MARGIN * span, n, dtype=torch.float64)


@torch.no_grad()
def plane(
    model: nn.Module,
    teacher: nn.Module,
    init: dict,
    final: dict,
    x: torch.Tensor,
    tau: float,
    n: int,
    device: torch.device,
) -> dict:
    """The loss grid of Fig. 6c and the path barrier. `model` is a scratch network of the student's
    architecture (its weights are overwritten); `init`/`final` are the student's state dicts; x
    holds uint8 distillation images."""
    if n < MIN_SIDE:
        raise ValueError(f"surface={n}: needs at least {MIN_SIDE} points per axis")
    model.eval()
    teacher.eval()
    xb = data.as_input(x.to(device))
    target = torch.cat([teacher(xb[i : i + 1000]).float() for i in range(0, len(xb), 1000)])
    origin = _flat(teacher)
    ends = []
    for state in (final, init):
        model.load_state_dict(state)
        ends.append(_flat(model) - origin)
    d = ends[0].norm()
    e1 = ends[0] / d
    b = ends[1] @ e1
    rest = ends[1] - b * e1
    c = rest.norm()
    if d == 0 or c <= 1e-6 * origin.norm():  # collinear up to the rounding of float32 weights
        raise ValueError(
            "the teacher, the initial and the final student lie on one line: they span no plane"
        )
    e2 = rest / c
    xs, ys = _axis(min(0.0, b.item()), max(d.item(), b.item()), n), _axis(0.0, c.item(), n)
    loss = [[_loss(model, origin + u * e1 + v * e2, xb, target, tau) for u in xs] for v in ys]
    path = [_loss(model, origin + t * ends[0], xb, target, tau) for t in torch.linspace(0, 1, PATH)]
    barrier = (max(path) - path[-1]) / (path[-1] - path[0]) if path[-1] > path[0] else 0.0
    return {
        "xs": xs.tolist(),
        "ys": ys.tolist(),
        "loss": loss,
        "path": path,
        "points": {"teacher": [0.0, 0.0], "final": [d.item(), 0.0], "init": [b.item(), c.item()]},
        "images": len(x),
        "temperature": tau,
        "barrier": barrier,
    }
