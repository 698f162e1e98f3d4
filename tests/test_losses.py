import math

import pytest
import torch
import torch.nn.functional as F

from kdrepro.losses import ensemble_logits, kd_loss


def _logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return (
        torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    )


def _unscaled_cross_entropy(
    student: torch.Tensor, teacher: torch.Tensor, tau: float
) -> torch.Tensor:
    """mean_b −Σ_j softmax(z_t/τ)_j log_softmax(z_s/τ)_j, without the τ² factor."""
    return -(F.softmax(teacher / tau, -1) * F.log_softmax(student / tau, -1)).sum(-1).mean()


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    return -(F.softmax(logits, -1) * F.log_softmax(logits, -1)).sum(-1).mean()


def test_closed_form_tau_1():
    # p_t = [1/4, 3/4], p_s = [1/2, 1/2]: −(1/4·ln ½ + 3/4·ln ½) = ln 2.
    teacher = torch.tensor([[0.0, math.log(3)]], dtype=torch.float64)
    student = torch.zeros(1, 2, dtype=torch.float64)
    assert kd_loss(student, teacher, 1.0).item() == pytest.approx(math.log(2), abs=1e-12)


def test_closed_form_tau_2():
    # z_t/2 = [0, ln 3] → p_t = [1/4, 3/4]; z_s/2 = [0, ln 2] → p_s = [1/3, 2/3].
    # τ²·CE = 4·−(1/4·ln(1/3) + 3/4·ln(2/3)) = 4·(ln 3 − 3/4·ln 2) = 4 ln 3 − 3 ln 2.
    teacher = torch.tensor([[0.0, math.log(9)]], dtype=torch.float64)
    student = torch.tensor([[0.0, math.log(4)]], dtype=torch.float64)
    expected = 4 * math.log(3) - 3 * math.log(2)
    assert kd_loss(student, teacher, 2.0).item() == pytest.approx(expected, abs=1e-12)


def test_tau_1_gradient_is_kl_gradient_and_gap_is_teacher_entropy():
    teacher = _logits(6, 10, seed=1)
    student = _logits(6, 10, seed=2).requires_grad_()
    loss = kd_loss(student, teacher, 1.0)
    (grad_loss,) = torch.autograd.grad(loss, student)
    kl = F.kl_div(
        F.log_softmax(student, -1),
        F.log_softmax(teacher, -1),
        reduction="batchmean",
        log_target=True,
    )
    (grad_kl,) = torch.autograd.grad(kl, student)
    assert torch.allclose(grad_loss, grad_kl, atol=1e-12)
    assert (loss - kl).item() == pytest.approx(_entropy(teacher).item(), abs=1e-12)


@pytest.mark.parametrize("tau", [0.5, 2.0, 4.0])
def test_soft_term_is_tau_squared_times_cross_entropy(tau: float):
    teacher, student = _logits(8, 5, seed=3), _logits(8, 5, seed=4)
    targets = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    loss = kd_loss(student, teacher, tau, alpha=0.3, targets=targets)
    soft = (loss - 0.3 * F.cross_entropy(student, targets)) / 0.7
    assert soft.item() == pytest.approx(
        tau**2 * _unscaled_cross_entropy(student, teacher, tau).item(), rel=1e-12
    )


def test_trap_tau_squared_kept_when_alpha_is_zero():
    teacher, student = _logits(8, 5, seed=3), _logits(8, 5, seed=4)
    unscaled = _unscaled_cross_entropy(student, teacher, 4.0).item()
    loss = kd_loss(student, teacher, 4.0, alpha=0.0).item()
    assert loss == pytest.approx(16 * unscaled, rel=1e-12)
    assert loss != pytest.approx(unscaled, rel=0.1)


def test_trap_kl_div_reduction_batchmean_not_mean():
    tau, teacher, student = 3.0, _logits(4, 10, seed=5), _logits(4, 10, seed=6)
    kl_gap = kd_loss(student, teacher, tau).item() - tau**2 * _entropy(teacher / tau).item()
    log_p_s, p_t = F.log_softmax(student / tau, -1), F.softmax(teacher / tau, -1)
    batchmean = tau**2 * F.kl_div(log_p_s, p_t, reduction="batchmean").item()
    with pytest.warns(
        UserWarning
    ):  # torch itself warns that "mean" divides by B·K, a factor K too small
        mean = tau**2 * F.kl_div(log_p_s, p_t, reduction="mean").item()
    assert kl_gap == pytest.approx(batchmean, rel=1e-10)
    assert abs(kl_gap - mean) > 0.5 * kl_gap


def test_ensemble_of_identical_members_is_the_member():
    member = _logits(5, 4, seed=7)
    combined = ensemble_logits(member.expand(3, 5, 4))  # m = 3 ≠ B = 5
    assert torch.allclose(combined, F.log_softmax(member, -1), atol=1e-12)
    assert torch.allclose(combined.exp().sum(-1), torch.ones(5, dtype=torch.float64), atol=1e-12)


def test_ensemble_averages_member_probabilities():
    members = _logits(3, 5, 4, seed=8)
    assert torch.allclose(
        ensemble_logits(members).exp(), F.softmax(members, -1).mean(0), atol=1e-12
    )


def test_ensemble_teacher_is_reduced_before_tempering():
    members, student, tau = 4 * _logits(3, 5, 4, seed=9), _logits(5, 4, seed=10), 4.0
    reduced = F.softmax(members, -1).mean(0).log()
    loss = kd_loss(student, members, tau).item()
    assert loss == pytest.approx(kd_loss(student, reduced, tau).item(), rel=1e-12)
    tempered_members = F.softmax(members / tau, -1).mean(0)
    tempered_first = (
        -(tau**2) * (tempered_members * F.log_softmax(student / tau, -1)).sum(-1).mean()
    )
    assert loss != pytest.approx(tempered_first.item(), rel=1e-3)


def test_alpha_1_is_cross_entropy_on_the_real_rows_only():
    teacher, student = _logits(8, 5, seed=11), _logits(8, 5, seed=12)
    targets = torch.tensor([4, 3, 2, 1, 0])
    loss = kd_loss(student, teacher, 4.0, alpha=1.0, targets=targets).item()
    assert loss == pytest.approx(F.cross_entropy(student[:5], targets).item(), rel=1e-12)
    synthetic_changed = torch.cat([student[:5], _logits(3, 5, seed=13)])
    assert kd_loss(
        synthetic_changed, teacher, 4.0, alpha=1.0, targets=targets
    ).item() == pytest.approx(loss, rel=1e-12)


def test_alpha_0_ignores_targets():
    teacher, student = _logits(8, 5, seed=11), _logits(8, 5, seed=12)
    targets = torch.tensor([4, 3, 2])
    assert (
        kd_loss(student, teacher, 2.0, targets=targets).item()
        == kd_loss(student, teacher, 2.0).item()
    )


def test_alpha_mixes_hard_and_soft_terms():
    teacher, student, targets = (
        _logits(8, 5, seed=14),
        _logits(8, 5, seed=15),
        torch.tensor([1, 1, 0]),
    )
    hard = kd_loss(student, teacher, 2.0, alpha=1.0, targets=targets).item()
    soft = kd_loss(student, teacher, 2.0).item()
    mixed = kd_loss(student, teacher, 2.0, alpha=0.25, targets=targets).item()
    assert mixed == pytest.approx(0.25 * hard + 0.75 * soft, rel=1e-12)


def test_per_example_temperature_tensor_matches_float():
    teacher, student = _logits(6, 5, seed=16), _logits(6, 5, seed=17)
    expected = kd_loss(student, teacher, 4.0).item()
    for tau in (torch.full((6,), 4.0), torch.full((6, 1), 4.0)):
        assert kd_loss(student, teacher, tau).item() == pytest.approx(expected, rel=1e-12)


def test_per_example_temperature_changes_only_its_row():
    teacher, student = _logits(6, 5, seed=18), _logits(6, 5, seed=19)
    tau = torch.tensor([4.0, 4.0, 1.0, 4.0, 4.0, 4.0])  # row 2 is, say, a synthetic example at τ=1
    rows = [kd_loss(student[b : b + 1], teacher[b : b + 1], tau[b].item()).item() for b in range(6)]
    assert kd_loss(student, teacher, tau).item() == pytest.approx(sum(rows) / 6, rel=1e-12)
    assert kd_loss(student, teacher, tau).item() != pytest.approx(
        kd_loss(student, teacher, 4.0).item(), rel=1e-3
    )


def test_teacher_receives_no_gradient():
    teacher = _logits(4, 3, seed=20).requires_grad_()
    student = _logits(4, 3, seed=21).requires_grad_()
    kd_loss(student, teacher, 2.0).backward()
    assert teacher.grad is None and student.grad is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"temperature": torch.tensor([1.0, 1.0, 0.0, 1.0])},
        {"temperature": torch.ones(3)},
        {"temperature": 1.0, "alpha": -0.1},
        {"temperature": 1.0, "alpha": 1.5},
        {"temperature": 1.0, "alpha": 0.5},
        {"temperature": 1.0, "alpha": 0.5, "targets": torch.zeros(5, dtype=torch.long)},
        {"temperature": 1.0, "teacher_logits": torch.zeros(4, 6)},
        {"temperature": 1.0, "teacher_logits": torch.zeros(2, 5, 3)},
    ],
)
def test_bad_input_raises(kwargs: dict):
    args = {"student_logits": torch.zeros(4, 3), "teacher_logits": torch.zeros(4, 3)} | kwargs
    with pytest.raises(ValueError):
        kd_loss(**args)


def test_missing_targets_message_says_to_pass_them():
    with pytest.raises(ValueError, match="targets"):
        kd_loss(torch.zeros(4, 3), torch.zeros(4, 3), 1.0, alpha=0.5)
