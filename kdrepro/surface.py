"""Fig. 6c: the distillation loss on the plane through a teacher, a student's initial weights and its final weights.

The plane's basis is Gram-Schmidt of (final - teacher, init - teacher) over all parameters, so the teacher sits at
(0, 0), the final student at (d, 0) and the initial student at (b, c), c > 0. The grid spans -1/4 to 5/4 of d along
the first axis and of c along the second, with `n` points per side; (n - 1) a multiple of 6 puts the teacher, the
final student and the initial student's height on grid points. The loss is the student's training objective (the
tau^2-scaled cross-entropy to the teacher's tempered predictions) on un-augmented distillation images, in eval mode.
Only LayerNorm networks qualify: a BatchNorm net's statistics would have to be re-estimated at every grid point.

The straight path from the final student to the teacher lies on the grid's row y = 0; its `barrier`, the highest
loss on that path above the higher of its two ends, as a fraction of the loss at the teacher, says whether the
student ended in the teacher's basin (0: the loss falls monotonically from the student to the teacher).
"""

import torch
from torch import nn

from . import data
from .losses import kd_loss

MARGIN = 0.25  # the grid extends this fraction of each span beyond the three points


def check_side(n: int) -> bool:
    """Whether `n` points per side put the three points on grid lines: n >= 7 and (n - 1) % 6 == 0."""
    return n >= 7 and (n - 1) % 6 == 0


def _flat(model: nn.Module) -> torch.Tensor:
    """All parameters as one float64 vector (reshape, not view: channels-last weights are not contiguous)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()


@torch.no_grad()
def _loss(model: nn.Module, theta: torch.Tensor, x: torch.Tensor, target: torch.Tensor, tau: float,
          batch_size: int = 1000) -> float:
    """The mean distillation loss of `model` with parameters `theta` (a flat vector)."""
    i = 0
    for p in model.parameters():
        p.copy_(theta[i:i + p.numel()].view(p.shape))
        i += p.numel()
    total = 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size]).float()
        total += kd_loss(logits, target[i:i + batch_size], tau).item() * len(logits)
    return total / len(x)


@torch.no_grad()
def plane(model: nn.Module, teacher: nn.Module, init: dict, final: dict, x: torch.Tensor, tau: float, n: int,
          device: torch.device) -> dict:
    """The loss grid of Fig. 6c. `model` is a scratch network of the student's architecture (its weights are
    overwritten); `init`/`final` are the student's state dicts; x holds uint8 distillation images."""
    if not check_side(n):
        raise ValueError(f"surface={n}: needs n >= 7 with n - 1 a multiple of 6")
    model.eval()
    teacher.eval()
    xb = data.unitcube(x.to(device)).contiguous(memory_format=torch.channels_last)
    target = torch.cat([teacher(xb[i:i + 1000]).float() for i in range(0, len(xb), 1000)])
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
    e2 = rest / c
    xs = torch.linspace(-MARGIN, 1 + MARGIN, n, dtype=torch.float64) * d
    ys = torch.linspace(-MARGIN, 1 + MARGIN, n, dtype=torch.float64) * c
    loss = torch.tensor([[_loss(model, origin + u * e1 + v * e2, xb, target, tau) for u in xs] for v in ys])
    row, (lo, hi) = (n - 1) // 6, ((n - 1) // 6, 5 * (n - 1) // 6)  # y = 0; x = 0 (teacher) .. x = d (student)
    path = loss[row, lo:hi + 1]
    barrier = (path.max() - torch.maximum(path[0], path[-1])).item() / path[0].item()
    return {"xs": xs.tolist(), "ys": ys.tolist(), "loss": loss.tolist(),
            "points": {"teacher": [0.0, 0.0], "final": [d.item(), 0.0], "init": [b.item(), c.item()]},
            "images": len(x), "temperature": tau, "barrier": barrier}
