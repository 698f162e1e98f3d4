"""Evaluation metrics of Stanton et al. (2021): accuracy, NLL, ECE, agreement, predictive KL, CKA.

Every metric is a sum over examples divided by n (the paper's eqs. 2 and 3), never a mean of batch
means, so `Meter` streaming over batches gives exactly the plain functions on the concatenation.
Computation is in float64 on the inputs' device.
"""

import torch
import torch.nn.functional as F


def _check(logits: torch.Tensor, other: torch.Tensor) -> None:
    """Require non-empty [n, K] logits and, over the same n, labels [n] or logits [n, K]."""
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"expected non-empty logits of shape [n, K], got {tuple(logits.shape)}")
    if other.shape not in (logits.shape[:1], logits.shape):
        raise ValueError(f"shape {tuple(other.shape)} does not match logits {tuple(logits.shape)}")


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.detach().double(), dim=-1)


def _n_correct(logits: torch.Tensor, labels: torch.Tensor) -> int:
    return (logits.argmax(-1) == labels).sum().item()


def _nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return F.nll_loss(_log_probs(logits), labels, reduction="sum").item()


def _kl_sum(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> float:
    log_p_t = _log_probs(teacher_logits)
    return (log_p_t.exp() * (log_p_t - _log_probs(student_logits))).sum().item()


def _calibration_sums(logits: torch.Tensor, labels: torch.Tensor, bins: int) -> torch.Tensor:
    """Per-bin [count, confidence sum, correct sum] as a [3, bins] CPU tensor.

    Bin k holds confidences in ((k−1)/bins, k/bins]; confidences ≤ 1/bins go to the first bin.
    """
    confidence, prediction = _log_probs(logits).exp().max(-1)
    # Interior edges k/bins; right=False puts a confidence equal to an edge in the bin below it.
    edges = torch.arange(1, bins, dtype=torch.float64, device=confidence.device) / bins
    index = torch.bucketize(confidence, edges, right=False)
    per_example = torch.stack(
        [torch.ones_like(confidence), confidence, (prediction == labels).double()]
    )
    sums = torch.zeros(3, bins, dtype=torch.float64, device=confidence.device)
    return sums.index_add_(1, index, per_example).cpu()


def _ece_from_sums(sums: torch.Tensor) -> float:
    # Σ_k (n_k/n)|acc_k − conf_k| = Σ_k |correct_k − confidence_k| / n, which skips empty bins for
    # free.
    count, confidence, correct = sums
    return ((correct - confidence).abs().sum() / count.sum()).item()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy, a fraction in [0, 1]."""
    _check(logits, labels)
    return _n_correct(logits, labels) / len(labels)


def agreement(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> float:
    """Top-1 agreement (paper eq. 2): the fraction of examples where the argmaxes coincide."""
    _check(student_logits, teacher_logits)
    return _n_correct(student_logits, teacher_logits.argmax(-1)) / len(student_logits)


def predictive_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> float:
    """Average predictive KL(p_t ‖ p_s) at τ = 1 in nats (paper eq. 3), teacher first."""
    _check(student_logits, teacher_logits)
    return _kl_sum(teacher_logits, student_logits) / len(student_logits)


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean −log p(y_i | x_i) in nats (the official code's `eval_epoch` indexed a B×B matrix
    instead)."""
    _check(logits, labels)
    return _nll_sum(logits, labels) / len(labels)


def ece(logits: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """Expected calibration error (Guo et al. 2017) with equal-width bins, a fraction in [0, 1]."""
    _check(logits, labels)
    return _ece_from_sums(_calibration_sums(logits, labels, bins))


def reliability(
    logits: torch.Tensor, labels: torch.Tensor, bins: int = 10
) -> dict[str, torch.Tensor]:
    """Per-bin count, mean confidence and accuracy (NaN in empty bins): the reliability diagram
    behind `ece`."""
    _check(logits, labels)
    count, confidence, correct = _calibration_sums(logits, labels, bins)
    safe = count.clamp(min=1)
    empty = torch.full_like(count, float("nan"))
    return {
        "count": count,
        "confidence": torch.where(count > 0, confidence / safe, empty),
        "accuracy": torch.where(count > 0, correct / safe, empty),
    }


DEVIATION_BINS = 10  # equal-width bins of the teacher's top-class probability on [0, 1]


def deviations(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    bins: int = DEVIATION_BINS,
) -> dict[str, list]:
    """How a student deviates from its teacher, binned by the teacher's confidence (its top-class
    probability, at temperature 1): per bin the count, the teacher's and the student's mean
    probability on the teacher's top class (`teacher_top`, `student_top`), the share of the bin's
    examples whose top class the student shares (`agree`: top-1 agreement, ties to the lowest class
    as argmax breaks them) and, over the examples with a label (labels >= 0; out-of-distribution
    images have -1), on the true class (`labelled`, `teacher_true`, `student_true`). Empty bins hold
    None. Nagarajan et al. (2023) plot these to show that a student is even less confident than its
    teacher where the teacher is unsure; fixed bin edges let bins be paired across trials, and
    `agree` with `count` says how much of the agreement gap sits in each bin."""
    _check(student_logits, teacher_logits)
    _check(student_logits, labels)
    p_t, p_s = _log_probs(teacher_logits).exp(), _log_probs(student_logits).exp()
    confidence, top = p_t.max(-1)
    edges = torch.arange(1, bins, dtype=torch.float64, device=confidence.device) / bins
    index = torch.bucketize(confidence, edges, right=False)
    has = labels >= 0
    true = labels.clamp(min=0)[:, None]
    columns = {
        "teacher_top": confidence,
        "student_top": p_s.gather(1, top[:, None])[:, 0],
        "teacher_true": p_t.gather(1, true)[:, 0],
        "student_true": p_s.gather(1, true)[:, 0],
        "agree": (student_logits.argmax(-1) == teacher_logits.argmax(-1)).double(),
    }
    out = {
        "count": torch.zeros(bins, dtype=torch.float64).index_add_(
            0, index.cpu(), torch.ones(len(index), dtype=torch.float64)
        ),
        "labelled": torch.zeros(bins, dtype=torch.float64).index_add_(
            0, index.cpu(), has.double().cpu()
        ),
    }
    for name, values in columns.items():
        weight = has.double() if name.endswith("true") else torch.ones_like(values)
        sums = torch.zeros(bins, dtype=torch.float64).index_add_(
            0, index.cpu(), (values * weight).cpu()
        )
        out[name] = sums / out["labelled" if name.endswith("true") else "count"]
    return {
        name: [
            int(v) if name in ("count", "labelled") else (None if v != v else float(v))
            for v in column.tolist()
        ]
        for name, column in out.items()
    }


class Meter:
    """Streams accuracy, NLL, ECE and optionally agreement and KL over evaluation batches.

    Accumulates per-example sums (ECE as per-bin sums), so `compute()` equals the plain
    functions applied to all batches concatenated, whatever the batch sizes.
    """

    def __init__(self, bins: int = 10) -> None:
        self.bins = bins
        self.n = 0
        self._sums = {"correct": 0.0, "nll": 0.0, "agree": 0.0, "kl": 0.0}
        self._calibration = torch.zeros(3, bins, dtype=torch.float64)
        self._with_teacher: bool | None = None

    def update(
        self,
        student_logits: torch.Tensor,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
    ) -> None:
        """Add one batch: student logits [B, K], labels [B] and optionally teacher logits [B, K]."""
        _check(student_logits, labels)
        with_teacher = teacher_logits is not None
        if with_teacher:
            _check(student_logits, teacher_logits)
        if self._with_teacher not in (None, with_teacher):
            raise ValueError("teacher_logits must be given for every batch or for none")
        self._with_teacher = with_teacher
        self.n += len(labels)
        self._sums["correct"] += _n_correct(student_logits, labels)
        self._sums["nll"] += _nll_sum(student_logits, labels)
        self._calibration += _calibration_sums(student_logits, labels, self.bins)
        if with_teacher:
            self._sums["agree"] += _n_correct(student_logits, teacher_logits.argmax(-1))
            self._sums["kl"] += _kl_sum(teacher_logits, student_logits)

    def compute(self) -> dict[str, float]:
        """Return accuracy, nll, ece, n and, if teacher logits were given, agreement and kl."""
        if self.n == 0:
            raise ValueError("Meter.compute() called before any update()")
        result = {
            "accuracy": self._sums["correct"] / self.n,
            "nll": self._sums["nll"] / self.n,
            "ece": _ece_from_sums(self._calibration),
            "n": self.n,
        }
        if self._with_teacher:
            result["agreement"] = self._sums["agree"] / self.n
            result["kl"] = self._sums["kl"] / self.n
        return result


def _features(x: torch.Tensor) -> torch.Tensor:
    """[n, d] features, or [n, C, H, W] maps averaged over H and W to [n, C], in float64."""
    if x.ndim == 4:
        x = x.mean(dim=(2, 3))
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(
            f"expected non-empty features of shape [n, d] or [n, C, H, W], got {tuple(x.shape)}"
        )
    return x.detach().double()


def _linear_gram(x: torch.Tensor) -> torch.Tensor:
    return x @ x.T


def _rbf_gram(x: torch.Tensor) -> torch.Tensor:
    """RBF Gram matrix exp(−d² / (2·median(d²))), Kornblith et al.'s (2019) bandwidth with threshold
    1."""
    sq_norms = (x * x).sum(1)
    sq_distances = sq_norms[:, None] + sq_norms[None, :] - 2 * x @ x.T
    # np.median, as in Kornblith's code, averages the two middle values; torch.median takes the
    # lower.
    ordered = sq_distances.flatten().sort().values
    median = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    return torch.exp(-sq_distances / (2 * median))


def _center(gram: torch.Tensor) -> torch.Tensor:
    """HKH with H = I − 11ᵀ/n, without forming H."""
    return gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()


_GRAMS = {"linear": _linear_gram, "rbf": _rbf_gram}


def cka(x: torch.Tensor, y: torch.Tensor, kernel: str = "linear") -> float:
    """Centered kernel alignment (Kornblith et al. 2019) between two representations of n examples.

    CKA = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)) with centered Grams HKH, HLH of kernel "linear"
    or "rbf" (median bandwidth). 4-D [n, C, H, W] inputs are averaged over H and W; the authors'
    code averaged over C and H instead (`gnosis/utils/metrics.py:preact_cka`), which we take to be a
    bug.
    """
    if kernel not in _GRAMS:
        raise ValueError(f"unknown kernel {kernel!r}, expected one of {sorted(_GRAMS)}")
    x, y = _features(x), _features(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must hold the same examples, got n={len(x)} and n={len(y)}")
    k, g = (_center(_GRAMS[kernel](z)) for z in (x, y))
    return ((k * g).sum() / torch.sqrt((k * k).sum() * (g * g).sum())).item()
