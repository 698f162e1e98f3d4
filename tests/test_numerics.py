"""The training numerics are pinned to `train.NUMERICS`: a tiny teacher and student must reproduce these numbers.

If this fails, a change altered what training computes (data order, augmentation, schedule, loss, init, metrics).
Then bump `train.NUMERICS` (stored runs of the old version are refused as stale and must be rerun) and record the
new numbers here under the new version. The tolerance absorbs float differences between CPUs of one kind; any
change to the numerics moves these numbers by orders of magnitude more.
"""

import pytest
import torch

from kdrepro import runs, train
from kdrepro.config import StudentConfig, TeacherConfig

TINY = dict(dataset="mnist", model="lenet5", train_size=200, epochs=20, batch_size=50, lr=0.05, augment="crop",
            crop_pad=2, evals=2, test_size=500)
# NUMERICS version -> (teacher curves, student curves): train loss, test NLL, and for the student test KL
PINNED = {
    2: ([(2.29419824, 2.25806087), (2.10910107, 1.94110934)],
        [(9.20677832, 2.30419432, 0.04827858), (9.20115332, 2.30510094, 0.0473583)]),
}


def configs() -> tuple[TeacherConfig, StudentConfig]:
    t = TeacherConfig(**TINY)
    return t, StudentConfig(**{**TINY, "epochs": 10, "teachers": (t,), "temperature": 2.0})


def test_a_tiny_run_reproduces_the_pinned_numbers(tmp_store):
    assert train.NUMERICS in PINNED, f"record the numbers of numerics version {train.NUMERICS} in PINNED"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the pinned numbers are 2-thread sums (1 thread differs in the 4th digit)
    try:
        curves = [runs.run(c, progress=False)["curves"] for c in configs()]
    finally:
        torch.set_num_threads(threads)
    teacher, student = curves
    got = [v for r in teacher for v in (r["train_loss"], r["nll"])] + \
        [v for r in student for v in (r["train_loss"], r["nll"], r["kl"])]
    pinned = [v for curves in PINNED[train.NUMERICS] for row in curves for v in row]
    assert got == pytest.approx(pinned, rel=1e-4), (
        "the training numerics changed: bump train.NUMERICS and record the new numbers in PINNED")
    assert [r["step"] for r in teacher] == [40, 80] and [r["step"] for r in student] == [20, 40]

