"""Packing G networks into one (kdrepro.packed) changes nothing but the order of floating-point
sums."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdrepro import models
from kdrepro.packed import Packed

CASES = [("preresnet8", "batch", 3, 32), ("preresnet8", "layer", 3, 32), ("lenet5", "batch", 1, 28)]


def members(name: str, norm: str, channels: int, size: int, g: int = 3) -> list[nn.Module]:
    nets = []
    for seed in range(g):
        torch.manual_seed(seed)
        nets.append(models.build(name, 10, in_channels=channels, norm=norm, image_size=size))
    return nets


@pytest.mark.parametrize("name,norm,channels,size", CASES)
def test_packed_forward_equals_each_member(name, norm, channels, size):
    nets = members(name, norm, channels, size)
    packed = Packed(nets)
    x = torch.randn(3, 8, channels, size, size, generator=torch.Generator().manual_seed(0))
    for mode in (True, False):  # train-mode batch statistics, then eval-mode running statistics
        packed.train(mode)
        out = packed(x)
        for g, net in enumerate(nets):
            torch.testing.assert_close(out[g], net.train(mode)(x[g]), rtol=1e-5, atol=1e-5)


def test_pack_then_unpack_gives_back_every_tensor_exactly():
    nets = members("preresnet8", "batch", 3, 32)
    assert sum(p.numel() for p in Packed(nets).parameters()) == sum(
        p.numel() for n in nets for p in n.parameters()
    )
    nets[1].layer1[0].bn1.running_mean.fill_(0.5)  # buffers travel too
    for g, state in enumerate(Packed(nets).unpack()):
        assert state.keys() == nets[g].state_dict().keys()
        for key, value in nets[g].state_dict().items():
            assert torch.equal(state[key], value), key


@pytest.mark.parametrize("name,norm,channels,size", CASES)
def test_training_packed_is_training_each_member(name, norm, channels, size):
    nets = members(name, norm, channels, size)
    packed = Packed(nets).train()
    sgd = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    opt = torch.optim.SGD(packed.parameters(), **sgd)
    opts = [torch.optim.SGD(n.parameters(), **sgd) for n in nets]
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(3, 16, channels, size, size, generator=gen)
        y = torch.randint(0, 10, (3, 16), generator=gen)
        loss = sum(
            F.cross_entropy(out, t) for out, t in zip(packed(x), y)
        )  # the sum: each member its own gradient
        opt.zero_grad()
        loss.backward()
        opt.step()
        for net, o, xb, yb in zip(nets, opts, x, y):
            net.train()
            o.zero_grad()
            F.cross_entropy(net(xb), yb).backward()
            o.step()
    # Grouped kernels sum in another order (differences of 1e-7 in one forward pass); three steps
    # through train-mode BatchNorm amplify them to about 4e-5 on weights of order 0.1-1: bound them
    # at 1e-4.
    for g, state in enumerate(packed.unpack()):
        for key, value in nets[g].state_dict().items():
            torch.testing.assert_close(
                state[key], value, rtol=1e-3, atol=1e-4, msg=lambda m: f"{key}: {m}"
            )


def test_a_layer_it_cannot_pack_is_a_one_line_error():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(4, 2)

    with pytest.raises(
        TypeError,
        match=r"^cannot pack a Embedding layer: only Conv2d, BatchNorm2d, GroupNorm and "
        r"Linear carry parameters in a packable network$",
    ):
        Packed([Odd(), Odd()])


def test_batches_for_the_wrong_number_of_networks_are_refused():
    with pytest.raises(ValueError, match="expected batches for 3 networks, got 2"):
        Packed(members("lenet5", "batch", 1, 28))(torch.zeros(2, 4, 1, 28, 28))


def test_a_packed_pool_trains_each_teacher_as_its_own_run(tmp_store):
    """Three teachers of one recipe trained as one packed network end where three plain runs end
    (the same data order, augmentations and init; only the order of sums inside grouped kernels
    differs), and are stored as runs. Early training amplifies rounding about tenfold per step (an
    init perturbed by 4e-7 moves a plain run's weights by 4e-4 within 4 steps), so the bound is
    checked over 2 steps: 1e-4 absolute."""
    from kdrepro import runs, store, train
    from kdrepro.config import TeacherConfig
    from kdrepro.errors import ConfigError
    from kdrepro.packed import fit_pack

    recipe = dict(
        dataset="mnist",
        model="preresnet8",
        train_size=200,
        epochs=1,
        batch_size=100,
        lr=0.05,
        augment="crop",
        crop_pad=2,
        evals=2,
        test_size=500,
    )
    cfgs = [TeacherConfig(**recipe, seed=s, subset_seed=s) for s in range(3)]
    cpu = torch.device("cpu")
    for cfg, got in zip(cfgs, fit_pack(cfgs, cpu, progress=False)):
        want = train.fit(cfg, cpu, progress=False)
        assert got.packed == 3 and [r["step"] for r in got.curves] == [
            r["step"] for r in want.curves
        ]
        for a, b in zip(got.curves, want.curves):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
            assert a["nll"] == pytest.approx(b["nll"], rel=1e-3)
        for key, value in want.weights.items():
            torch.testing.assert_close(got.weights[key], value, rtol=0, atol=1e-4)
    with pytest.raises(ConfigError, match="a pack needs runs of one recipe"):
        fit_pack([cfgs[0], TeacherConfig(**{**recipe, "lr": 0.1})], cpu, progress=False)
    vgg = {**recipe, "dataset": "cifar10_jpeg", "model": "vgg16"}
    with pytest.raises(ConfigError, match="vgg16 has dropout"):
        fit_pack([TeacherConfig(**vgg), TeacherConfig(**vgg, seed=1)], cpu, progress=False)
    results = runs.run_all(cfgs, "cpu", progress=False, pack=2)  # a pack of 2, then one of 1
    assert [r["provenance"].get("packed", 1) for r in results] == [2, 2, 1]
    assert all(store.get(c) is not None and runs.weights_path(c).exists() for c in cfgs)


STUDENT = dict(
    dataset="mnist",
    model="preresnet8",
    epochs=1,
    lr=0.05,
    augment="crop",
    crop_pad=2,
    evals=2,
    test_size=500,
)


def pool(n: int = 9) -> list:
    from kdrepro.config import TeacherConfig

    return [
        TeacherConfig(**STUDENT, train_size=100, batch_size=50, seed=s, subset_seed=s)
        for s in range(n)
    ]


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_a_packed_pool_of_students_distills_each_as_its_own_run(tmp_store, monkeypatch, alpha):
    """Three students, each from its own ensemble of 2 teachers (packed into one labelling network
    of 6) and with its own control, end where three plain distillation runs end over 2 steps (within
    2e-4: the students' larger BatchNorm variances carry the reordered sums further than the
    teachers' test sees), with the same curves and final metrics; with alpha > 0 each also learns
    its own true labels."""
    from kdrepro import finish, inputs, runs, train
    from kdrepro.config import StudentConfig
    from kdrepro.errors import ConfigError
    from kdrepro.models import Ensemble
    from kdrepro.packed import fit_pack

    cpu, teachers_ = torch.device("cpu"), pool()
    # After 2 steps a student is still near the uniform output that `check_learned` refuses; both
    # paths call it the same way (`finish_student`), and what is compared here is the arithmetic.
    monkeypatch.setattr(finish, "check_learned", lambda cfg, final: None)

    def untrained(t) -> torch.nn.Module:
        """An untrained teacher whose head is scaled up, so that its tempered outputs are far from
        uniform."""
        net = runs.network(t, inputs.new_model(t).state_dict(), cpu)
        with torch.no_grad():
            [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1].weight.mul_(10)
        return net

    teachers = [Ensemble([untrained(t) for t in teachers_[2 * k : 2 * k + 2]]) for k in range(3)]
    controls = [Ensemble([untrained(teachers_[6 + k])]) for k in range(3)]
    cfgs = [
        StudentConfig(
            **STUDENT,
            train_size=200,
            batch_size=100,
            seed=s,
            subset_seed=s,
            init_seed=100 + s,
            temperature=4.0,
            alpha=alpha,
            teachers=tuple(teachers_[2 * s : 2 * s + 2]),
            control=(teachers_[6 + s],),
        )
        for s in range(3)
    ]
    got = fit_pack(cfgs, cpu, teachers, controls, progress=False)
    for cfg, teacher, control, have in zip(cfgs, teachers, controls, got):
        want = train.fit(cfg, cpu, teacher, control, progress=False)
        assert have.packed == 3 and have.teacher_test == want.teacher_test
        for a, b in zip(have.curves + [have.final], want.curves + [want.final], strict=True):
            assert a.keys() == b.keys()
            for key, value in b.items():
                assert a[key] == pytest.approx(value, rel=1e-3, abs=1e-6), key
        # measured: up to 9e-5 on weights and 2.3e-4 on BatchNorm running variances (~1.8) with 2
        # threads, 3e-5 with 1; a mislabelled batch or a wrong teacher moves them by 1e-2 or more
        for key, value in want.weights.items():
            torch.testing.assert_close(have.weights[key], value, rtol=2e-4, atol=2e-4)
    with pytest.raises(ConfigError, match="a pack trains students from a random init"):
        fit_pack(
            [replace(c, teachers=c.teachers[:1], init="shared", init_seed=None) for c in cfgs],
            cpu,
            teachers,
            progress=False,
        )
    with pytest.raises(ConfigError, match="a pack needs runs of one recipe"):
        fit_pack(
            [cfgs[0], replace(cfgs[1], teachers=tuple(teachers_[2:3]))],
            cpu,
            teachers,
            progress=False,
        )


def test_a_sweep_packs_the_students_a_pack_can_take(tmp_store, monkeypatch):
    """Through `run_all --pack`, students of one recipe train packed (with stage CKA and train KL
    like a plain run), and a student a pack cannot take (the teacher's initial weights) trains
    alone."""
    from kdrepro import finish, runs, store
    from kdrepro.config import StudentConfig

    # 2-step teachers label near-uniformly
    monkeypatch.setattr(finish, "check_learned", lambda cfg, final: None)
    trained = pool(3)
    one = [
        StudentConfig(
            **STUDENT,
            train_size=200,
            batch_size=100,
            seed=s,
            subset_seed=s,
            init_seed=100 + s,
            temperature=1.0,
            teachers=(trained[s],),
            control=(trained[2],),
        )
        for s in range(2)
    ]
    shared = replace(one[0], init="shared", init_seed=None)
    results = runs.run_all([*trained, *one, shared], "cpu", progress=False, pack=3)
    assert [r["provenance"].get("packed", 1) for r in results] == [3, 3, 3, 2, 2, 1]
    assert {"cka_stage1", "train_kl"} <= results[3]["final"].keys() == results[5]["final"].keys()
    assert all(store.get(c) is not None for c in one)


def test_a_member_that_fails_in_a_pack_costs_the_others_nothing(tmp_store, monkeypatch):
    """A diverging member is returned as its failure; its pack-mates are stored, and the plain loop
    then retrains it and reports the failure with its own one-line error."""
    from kdrepro import errors, runs, store, train

    evaluation = train.evaluation

    def diverge_seed_1(cfg, *args):
        if cfg.seed == 1:
            raise errors.TrainingFailed(f"{cfg.describe()}: train loss is nan at step 1; lower lr")
        return evaluation(cfg, *args)

    monkeypatch.setattr(train, "evaluation", diverge_seed_1)
    cfgs = pool(2)
    with pytest.raises(errors.TrainingFailed, match="seed 1.*train loss is nan"):
        runs.run_all(cfgs, "cpu", progress=False, pack=2)
    assert store.get(cfgs[0])["provenance"]["packed"] == 2 and store.get(cfgs[1]) is None
