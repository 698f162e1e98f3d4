"""The knowledge-distillation loss as implemented by Stanton et al. (2021), and ensemble reduction.

See the paper's eq. 1 and §3 (ensembles), and the official code's
`gnosis/distillation/classification.py`.
"""

import math

import torch
import torch.nn.functional as F


def ensemble_logits(member_logits: torch.Tensor) -> torch.Tensor:
    """Combine member logits [m, B, K] into ensemble logits [B, K].

    The result is log((1/m) Σ_i softmax(z_i)), the log of the mean predictive distribution,
    so softmax(result) is the ensemble's prediction and exp(result) already sums to 1.
    """
    if member_logits.ndim != 3 or member_logits.shape[0] == 0:
        raise ValueError(
            "expected member logits of shape [m, B, K] with m >= 1, got "
            f"{tuple(member_logits.shape)}"
        )
    # logsumexp of log-probabilities averages probabilities without underflow.
    return torch.logsumexp(F.log_softmax(member_logits, dim=-1), dim=0) - math.log(
        member_logits.shape[0]
    )


def _temperature_column(
    temperature: float | torch.Tensor, batch_size: int, like: torch.Tensor
) -> torch.Tensor:
    """Return the temperature as a [B, 1] tensor so it broadcasts over classes."""
    tau = torch.as_tensor(temperature, dtype=like.dtype, device=like.device)
    if tau.ndim == 0:
        tau = tau.expand(batch_size)
    if tau.shape not in ((batch_size,), (batch_size, 1)):
        raise ValueError(
            f"temperature must be a float or of shape [B] or [B, 1] with B={batch_size}, got "
            f"{tuple(tau.shape)}"
        )
    if not bool((tau > 0).all()):
        raise ValueError(f"temperature must be > 0, got a minimum of {tau.min().item()}")
    return tau.reshape(batch_size, 1)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float | torch.Tensor,
    alpha: float = 0.0,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distillation loss L = alpha·CE(z_s[:n_real], y) + (1 − alpha)·L_soft (the paper's eq. 1).

    L_soft = mean_b[ −τ_b² Σ_j softmax(z_t/τ_b)_j · log_softmax(z_s/τ_b)_j ] is the forward
    cross-entropy, so its minimum is τ²·H(softmax(z_t/τ)), not 0. The τ² factor is applied for
    every alpha, as in the authors' code.

    Args:
        student_logits: [B, K].
        teacher_logits: [B, K], or [m, B, K] for an ensemble, which is reduced with
            `ensemble_logits` before tempering. Treated as a constant.
        temperature: τ > 0, a float or a per-example tensor of shape [B] or [B, 1]
            (synthetic examples may be distilled at a different τ).
        alpha: weight of the hard-label term, in [0, 1].
        targets: labels [n_real] of the first n_real rows; the remaining rows are unlabelled
            synthetic inputs. Required when alpha > 0, ignored when alpha == 0.

    Returns:
        A scalar tensor, differentiable w.r.t. student_logits.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    teacher_logits = teacher_logits.detach()
    if teacher_logits.ndim == 3:
        teacher_logits = ensemble_logits(teacher_logits)
    if student_logits.ndim != 2 or teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and (ensembled) teacher logits "
            f"{tuple(teacher_logits.shape)} must both be [B, K]"
        )
    tau = _temperature_column(temperature, student_logits.shape[0], student_logits)
    cross_entropy = -(
        F.softmax(teacher_logits / tau, dim=-1) * F.log_softmax(student_logits / tau, dim=-1)
    ).sum(-1)
    soft = (tau.squeeze(1) ** 2 * cross_entropy).mean()
    if alpha == 0.0:
        return soft
    if targets is None:
        raise ValueError("alpha > 0 needs the hard labels: pass targets=")
    if targets.ndim != 1 or not 1 <= len(targets) <= len(student_logits):
        raise ValueError(
            f"targets {tuple(targets.shape)} must label the first rows of student logits "
            f"{tuple(student_logits.shape)}"
        )
    hard = F.cross_entropy(student_logits[: len(targets)], targets)
    return alpha * hard + (1.0 - alpha) * soft
