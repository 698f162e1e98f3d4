import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, kl_divergence

from kdrepro.metrics import Meter, accuracy, agreement, cka, ece, nll, predictive_kl, reliability


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _labels(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(k, (n,), generator=torch.Generator().manual_seed(seed))


def _two_class_logits(confidences: list[float]) -> torch.Tensor:
    """Logits [0, ln(c/(1−c))]: class 1 is predicted with confidence exactly c."""
    return torch.tensor([[0.0, math.log(c / (1 - c))] for c in confidences], dtype=torch.float64)


def test_nll_is_cross_entropy():
    logits, labels = _randn(13, 7, seed=1), _labels(13, 7, seed=2)
    assert nll(logits, labels) == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-12)


def test_trap_nll_is_not_the_papers_bxb_indexing():
    logits, labels = _randn(5, 5, seed=3), torch.tensor([3, 0, 4, 1, 2])
    buggy = (
        -F.log_softmax(logits, -1)[..., labels].mean().item()
    )  # a 5×5 matrix: every example × every label
    assert abs(nll(logits, labels) - buggy) > 1e-3


def test_accuracy_hand_example():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0], [0.0, 5.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75


def test_agreement_hand_example():
    teacher = torch.tensor([[2.0, 1.0], [2.0, 1.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    student = torch.tensor([[9.0, 0.0], [0.0, 9.0], [0.0, 9.0], [0.0, 9.0], [9.0, 0.0]])
    assert agreement(teacher, student) == 3 / 5


def test_predictive_kl_matches_torch_distributions():
    teacher, student = _randn(11, 6, seed=4), _randn(11, 6, seed=5)
    expected = kl_divergence(Categorical(logits=teacher), Categorical(logits=student)).mean().item()
    assert predictive_kl(teacher, student) == pytest.approx(expected, rel=1e-12)
    assert predictive_kl(teacher, teacher) == pytest.approx(0.0, abs=1e-15)


def test_predictive_kl_direction_is_teacher_to_student():
    teacher, student = (
        _two_class_logits([0.5]),
        _two_class_logits([0.1]),
    )  # p_t = [½, ½], p_s = [0.9, 0.1]
    forward = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # = ln(5/3) ≈ 0.511
    reverse = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # ≈ 0.368
    assert predictive_kl(teacher, student) == pytest.approx(forward, rel=1e-12)
    assert predictive_kl(student, teacher) == pytest.approx(reverse, rel=1e-12)


# Class 1 is always predicted; label 1 means correct.
ECE_CONFIDENCES = [0.55, 0.65, 0.7, 0.95, 0.92]
ECE_LABELS = torch.tensor([1, 0, 1, 1, 0])


def test_ece_hand_example_with_a_bin_edge():
    # Bin (0.5,0.6]: {0.55 ✓}            n=1, acc 1,   conf 0.55  → 1/5·|1 − 0.55|    = 0.09 Bin
    # (0.6,0.7]: {0.65 ✗, 0.7 ✓}     n=2, acc 0.5, conf 0.675 → 2/5·|0.5 − 0.675| = 0.07 Bin
    # (0.9,1.0]: {0.95 ✓, 0.92 ✗}    n=2, acc 0.5, conf 0.935 → 2/5·|0.5 − 0.935| = 0.174 ECE = 0.09
    # + 0.07 + 0.174 = 0.334. With 0.7 in (0.7,0.8] it would be 0.09 + 0.13 + 0.06 + 0.174 = 0.454.
    assert ece(_two_class_logits(ECE_CONFIDENCES), ECE_LABELS) == pytest.approx(0.334, abs=1e-12)


def test_trap_ece_bin_count_matters_and_default_is_10():
    logits = _two_class_logits(ECE_CONFIDENCES)
    # With 15 bins every example sits alone in its bin: (0.45 + 0.65 + 0.3 + 0.05 + 0.92) / 5 =
    # 0.474.
    assert ece(logits, ECE_LABELS, bins=15) == pytest.approx(0.474, abs=1e-12)
    assert (
        ece(logits, ECE_LABELS)
        == ece(logits, ECE_LABELS, bins=10)
        != ece(logits, ECE_LABELS, bins=15)
    )


def test_ece_low_confidences_share_the_first_bin():
    # 20 classes: a uniform row (confidence 0.05, correct) and a row with e^a = 1.52/0.92, so that
    # confidence = (1.52/0.92) / (1.52/0.92 + 19) = 1.52/19 = 0.08 (wrong). Both lie in (0, 0.1]:
    # ECE = |1/2 − (0.05 + 0.08)/2| = 0.435 (separate bins would give (0.95 + 0.08)/2 = 0.515).
    logits = torch.zeros(2, 20, dtype=torch.float64)
    logits[1, 0] = math.log(1.52 / 0.92)
    assert ece(logits, torch.tensor([0, 1])) == pytest.approx(0.435, abs=1e-12)


def test_meter_streaming_equals_functions_on_concatenation():
    sizes = [7, 5, 1]
    students = [_randn(b, 4, seed=10 + i) for i, b in enumerate(sizes)]
    teachers = [_randn(b, 4, seed=20 + i) for i, b in enumerate(sizes)]
    labels = [_labels(b, 4, seed=30 + i) for i, b in enumerate(sizes)]
    meter = Meter()
    for s, y, t in zip(students, labels, teachers):
        meter.update(s, y, t)
    s, y, t = torch.cat(students), torch.cat(labels), torch.cat(teachers)
    expected = {
        "accuracy": accuracy(s, y),
        "nll": nll(s, y),
        "ece": ece(s, y),
        "agreement": agreement(t, s),
        "kl": predictive_kl(t, s),
        "n": 13,
    }
    assert meter.compute() == pytest.approx(expected, rel=1e-12)


def test_meter_is_not_a_mean_of_batch_means():
    meter = Meter()
    meter.update(torch.eye(3), torch.tensor([0, 1, 2]))  # 3 of 3 correct
    meter.update(torch.eye(3)[:1], torch.tensor([2]))  # 0 of 1 correct
    assert meter.compute()["accuracy"] == 3 / 4  # the mean of batch means would be (1 + 0) / 2
    assert "agreement" not in meter.compute()


def test_meter_rejects_teacher_logits_on_only_some_batches():
    meter = Meter()
    meter.update(torch.eye(3), torch.tensor([0, 1, 2]), torch.eye(3))
    with pytest.raises(ValueError):
        meter.update(torch.eye(3), torch.tensor([0, 1, 2]))


def test_meter_compute_before_update_raises():
    with pytest.raises(ValueError):
        Meter().compute()


@pytest.mark.parametrize(
    "call",
    [
        lambda: accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
        lambda: nll(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long)),
        lambda: agreement(torch.zeros(4, 3), torch.zeros(4, 2)),
        lambda: predictive_kl(torch.zeros(4, 3), torch.zeros(3, 3)),
        lambda: ece(torch.zeros(4), torch.zeros(4, dtype=torch.long)),
        lambda: cka(torch.zeros(4, 3), torch.zeros(5, 3)),
        lambda: cka(torch.zeros(0, 3), torch.zeros(0, 3)),
        lambda: cka(torch.randn(4, 3), torch.randn(4, 3), kernel="poly"),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def _related_features(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """Two representations that share structure but are not equal, so CKA is strictly between 0 and
    1."""
    x = _randn(n, 8, seed=40)
    y = torch.tanh(x[:, :5] @ _randn(5, 6, seed=41)) + 0.3 * _randn(n, 6, seed=42)
    return x, y


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_cka_identical_features_is_one(kernel: str):
    x, _ = _related_features()
    assert cka(x, x, kernel) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_cka_invariant_to_rotation_and_isotropic_scaling(kernel: str):
    x, y = _related_features()
    q, _ = torch.linalg.qr(_randn(8, 8, seed=43))
    reference = cka(x, y, kernel)
    assert 0.1 < reference < 0.99
    assert cka(x @ q, y, kernel) == pytest.approx(reference, rel=1e-9)
    assert cka(x, 3.7 * y, kernel) == pytest.approx(reference, rel=1e-9)


def _kornblith_rbf_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al.'s numpy reference, cka(gram_rbf(x), gram_rbf(y)), transcribed to torch."""

    def gram_rbf(z: torch.Tensor) -> torch.Tensor:
        dot_products = z @ z.T
        sq_norms = dot_products.diag()
        sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
        return torch.exp(
            -sq_distances / (2 * torch.quantile(sq_distances, 0.5))
        )  # quantile 0.5 = np.median

    def center_gram(gram: torch.Tensor) -> torch.Tensor:
        means = gram.mean(0)
        means = means - means.mean() / 2
        return gram - means[:, None] - means[None, :]

    k, g = center_gram(gram_rbf(x)), center_gram(gram_rbf(y))
    return (k.flatten() @ g.flatten() / (k.norm() * g.norm())).item()


def test_cka_rbf_matches_kornblith_reference():
    x, y = _related_features(n=6)  # 36 squared distances: the median averages the two middle ones
    assert cka(x, y, "rbf") == pytest.approx(_kornblith_rbf_cka(x, y), rel=1e-12)


def test_cka_averages_4d_maps_over_height_and_width():
    x4, y4 = _randn(30, 4, 3, 5, seed=44), _randn(30, 6, 3, 5, seed=45)
    value = cka(x4, y4)
    assert value == pytest.approx(cka(x4.mean(dim=(2, 3)), y4.mean(dim=(2, 3))), rel=1e-12)
    assert value != pytest.approx(
        cka(x4.mean(dim=(1, 2)), y4.mean(dim=(1, 2))), rel=1e-3
    )  # the paper code's axes


def test_cka_low_for_independent_features():
    assert cka(_randn(200, 5, seed=46), _randn(200, 5, seed=47)) < 0.3


def test_metrics_accept_float32_and_return_floats():
    logits, labels = _randn(9, 3, seed=48).float(), _labels(9, 3, seed=49)
    values = [
        accuracy(logits, labels),
        nll(logits, labels),
        ece(logits, labels),
        cka(logits, logits, "rbf"),
    ]
    assert all(type(v) is float for v in values)


def test_reliability_bins_match_ece():
    # Max probabilities 0.65 (right), 0.65 (wrong), 0.55 (right), 0.55 (wrong): bins (0.6, 0.7] and
    # (0.5, 0.6].
    probs = torch.tensor([[0.65, 0.35], [0.65, 0.35], [0.45, 0.55], [0.55, 0.45]])
    labels = torch.tensor([0, 1, 1, 1])
    r = reliability(probs.log(), labels)
    assert r["count"].tolist() == [0, 0, 0, 0, 0, 2, 2, 0, 0, 0]
    assert r["accuracy"][5].item() == pytest.approx(0.5) and r["confidence"][
        6
    ].item() == pytest.approx(0.65)
    assert torch.isnan(r["accuracy"][0])
    # ECE = (2/4)|0.5 - 0.55| + (2/4)|0.5 - 0.65| = 0.025 + 0.075
    assert ece(probs.log(), labels) == pytest.approx(0.1)
    filled = r["count"] > 0
    by_hand = (
        r["count"][filled] * (r["accuracy"][filled] - r["confidence"][filled]).abs()
    ).sum() / 4
    assert by_hand.item() == pytest.approx(0.1)


def test_deviations_by_hand():
    from kdrepro.metrics import deviations

    probs = lambda rows: torch.tensor(rows, dtype=torch.float64).log()  # noqa: E731
    teacher = probs([[0.85, 0.15], [0.35, 0.65], [0.85, 0.15]])
    student = probs([[0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    d = deviations(teacher, student, torch.tensor([0, 0, -1]))  # the third image has no label (OOD)
    assert d["count"] == [0, 0, 0, 0, 0, 0, 1, 0, 2, 0] and d["labelled"] == [
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        0,
        1,
        0,
    ]
    assert d["teacher_top"][8] == pytest.approx(0.85) and d["student_top"][8] == pytest.approx(0.75)
    assert d["teacher_true"][8] == pytest.approx(0.85) and d["student_true"][8] == pytest.approx(
        0.6
    )
    assert d["teacher_top"][6] == pytest.approx(0.65) and d["student_top"][6] == pytest.approx(0.5)
    assert d["teacher_true"][6] == pytest.approx(0.35) and d["student_true"][6] == pytest.approx(
        0.5
    )
    assert d["agree"][8] == 1.0 and d["agree"][6] == 0.0  # the second image: student ties on 0
    assert d["student_top"][0] is None and d["teacher_true"][9] is None and d["agree"][0] is None
    with pytest.raises(ValueError, match="does not match"):
        deviations(teacher, student[:2], torch.tensor([0, 0, 1]))


def test_deviations_per_bin_agreement_adds_up_to_the_agreement():
    from kdrepro.metrics import agreement, deviations

    g = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(1000, 10, generator=g) * 3, torch.randn(1000, 10, generator=g)
    d = deviations(teacher, student, torch.randint(0, 10, (1000,), generator=g))
    hits = sum(n * a for n, a in zip(d["count"], d["agree"], strict=True) if n)
    assert hits / 1000 == pytest.approx(agreement(teacher, student), abs=1e-12)
