"""KDREPRO_COMPILE=1: the training step under torch.compile gives the eager loop's numbers. On a GPU
it compiles with CUDA graphs (mode 'reduce-overhead'), which only a GPU can check; here the same
capture runs with the 'aot_eager' backend (dynamo's graph, AOT autograd, eager kernels), which
checks that compiling changes nothing but speed: BatchNorm statistics, the teacher's eval-mode
labels, the loss and the optimizer steps."""

import pytest
import torch

from kdrepro import devices, packed, plan, runs, train
from kdrepro.config import StudentConfig, TeacherConfig

COMMON = dict(
    dataset="cifar10_jpeg", model="preresnet8", train_size=64, batch_size=32, lr=0.05, test_size=100
)
TEACHER = TeacherConfig(**COMMON, epochs=2, evals=2)
STUDENT = StudentConfig(
    **COMMON, epochs=2, evals=2, teachers=(TEACHER,), temperature=1.0, init_seed=plan.fresh_init(0)
)


@pytest.fixture
def compile_here(monkeypatch):
    monkeypatch.setenv("KDREPRO_COMPILE", "1")
    monkeypatch.setitem(devices.COMPILE, "cpu", {"backend": "aot_eager"})
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _same(a: train.Trained, b: train.Trained) -> None:
    for ra, rb in zip(a.curves, b.curves, strict=True):
        for key in ra:
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), key
    for key in a.weights:
        torch.testing.assert_close(a.weights[key], b.weights[key], rtol=1e-4, atol=1e-5)


def test_without_the_switch_nothing_is_compiled(monkeypatch):
    monkeypatch.delenv("KDREPRO_COMPILE", raising=False)
    net = torch.nn.Linear(2, 2)
    assert devices.compiled(net, torch.device("cpu")) is net and not devices.compiling()


def test_a_compiled_teacher_and_student_take_the_eager_steps(
    tmp_store, monkeypatch, capsys, compile_here
):
    cpu, graphs = torch.device("cpu"), torch._dynamo.utils.counters["stats"]
    compiled_teacher = train.fit(TEACHER, cpu, progress=False)
    assert graphs["unique_graphs"] >= 1
    monkeypatch.setenv("KDREPRO_COMPILE", "0")
    # the compiled run's final checkpoint is not resumed by an eager run, which starts again from
    # step 0
    _same(compiled_teacher, train.fit(TEACHER, cpu, progress=False))
    assert "not by this code" in capsys.readouterr().out
    runs.run(TEACHER, progress=False)
    teacher = runs.ensemble((TEACHER,), cpu, progress=False)
    eager = train.fit(STUDENT, cpu, teacher, progress=False)
    monkeypatch.setenv("KDREPRO_COMPILE", "1")
    before = graphs["unique_graphs"]
    result = runs.run(
        STUDENT, progress=False
    )  # restarts too: the eager checkpoint is another fingerprint's
    assert "not by this code" in capsys.readouterr().out
    assert (
        graphs["unique_graphs"] > before
    )  # the student's step and its teacher's labels ran compiled
    assert (
        result["fingerprint"]["compiled"] is True
        and "compiled" not in runs.stored(TEACHER)["fingerprint"]
    )
    for key, value in eager.final.items():
        assert result["final"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_a_compiled_pack_takes_the_eager_steps(monkeypatch, compile_here):
    cpu = torch.device("cpu")
    pack = [TEACHER, TeacherConfig(**{**COMMON, "epochs": 2, "evals": 2, "seed": 1})]
    fast = packed.fit_pack(pack, cpu, progress=False)
    monkeypatch.setenv("KDREPRO_COMPILE", "0")
    for a, b in zip(fast, packed.fit_pack(pack, cpu, progress=False), strict=True):
        _same(a, b)
