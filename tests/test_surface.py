"""Fig. 6c's loss plane: the grid puts the teacher and the final student where they are, the teacher
is the minimum, and a student run asking for a plane stores it beside its results."""

import math

import pytest
import torch

from kdrepro import data, inputs, runs, surface
from kdrepro.config import StudentConfig, TeacherConfig
from kdrepro.errors import ConfigError
from kdrepro.losses import kd_loss

NET = dict(
    dataset="mnist",
    model="preresnet8",
    norm="layer",
    train_size=100,
    epochs=2,
    batch_size=50,
    augment="crop",
    crop_pad=2,
    evals=1,
)


def nets(scales=(0.3, 0.3)):
    """A teacher and two students of one LayerNorm architecture, each a seeded perturbation of the
    last."""
    cfg = TeacherConfig(**NET)
    teacher = inputs.new_model(cfg)
    out = [teacher]
    for seed, scale in zip((2, 3), scales):
        net = inputs.new_model(cfg)
        torch.manual_seed(seed)
        with torch.no_grad():
            for p, q in zip(net.parameters(), teacher.parameters()):
                p.copy_(q + scale * torch.randn_like(p))
        out.append(net)
    return cfg, out


def test_the_plane_places_its_points_and_the_teacher_is_its_minimum():
    cfg, (teacher, init, final) = nets()
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    out = surface.plane(
        inputs.new_model(cfg),
        teacher,
        init.state_dict(),
        final.state_dict(),
        x,
        4.0,
        5,
        torch.device("cpu"),
    )
    loss, xs, ys, points = torch.tensor(out["loss"]), out["xs"], out["ys"], out["points"]
    assert loss.shape == (5, 5) and len(out["path"]) == surface.PATH
    (b, c), d = points["init"], points["final"][0]
    assert (
        xs[0] < min(0, b) <= max(d, b) < xs[-1] and ys[0] < 0 < c < ys[-1]
    )  # the grid holds all three points
    xb = data.unitcube(x).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        at_teacher = kd_loss(teacher.eval()(xb), teacher(xb), 4.0).item()
        at_final = kd_loss(final.eval()(xb), teacher(xb), 4.0).item()
    assert out["path"][0] == pytest.approx(at_teacher, rel=1e-5) and out["path"][
        -1
    ] == pytest.approx(at_final, rel=1e-4)
    # the cross-entropy to the teacher is smallest at the teacher (there it is the teacher's own
    # entropy)
    assert loss.min().item() >= at_teacher - 1e-5 and out["barrier"] >= 0
    # a student a small step from the teacher: the loss rises monotonically along the path, no
    # barrier
    cfg, (teacher, init, near) = nets((0.3, 1e-3))
    out = surface.plane(
        inputs.new_model(cfg),
        teacher,
        init.state_dict(),
        near.state_dict(),
        x,
        4.0,
        5,
        torch.device("cpu"),
    )
    assert out["barrier"] == 0.0
    with pytest.raises(ValueError, match="surface=4: needs at least 5 points per axis"):
        surface.plane(
            inputs.new_model(cfg),
            teacher,
            init.state_dict(),
            near.state_dict(),
            x,
            4.0,
            4,
            torch.device("cpu"),
        )
    middle = {
        k: (v + near.state_dict()[k]) / 2 if v.is_floating_point() else v
        for k, v in teacher.state_dict().items()
    }
    with pytest.raises(ValueError, match="lie on one line"):
        surface.plane(
            inputs.new_model(cfg),
            teacher,
            middle,
            near.state_dict(),
            x,
            4.0,
            5,
            torch.device("cpu"),
        )


def test_a_student_run_stores_its_plane_and_bad_requests_are_one_line(tmp_store):
    t = TeacherConfig(**NET)
    s = StudentConfig(
        **NET, teachers=(t,), init="interpolate", init_lambda=0.5, init_seed=99, surface=5
    )
    result = runs.run(s, progress=False)
    plane = result["surface"]
    assert len(plane["loss"]) == 5 and plane["images"] == 100 and plane["temperature"] == 4.0
    assert result["final"]["loss_barrier"] == plane["barrier"]
    # the chapter's table reads the ridge's height in nats off the stored path
    from kdrepro.plan import Plan

    row = Plan("t", "smoke", [({"role": "student"}, s)], {}).table([result]).iloc[0]
    assert row.loss_ridge == max(plane["path"]) - plane["path"][-1] >= 0
    assert row.loss_peak == max(plane["path"]) >= plane["path"][0]
    # the student's distances from its teacher: the plane's points, the teacher at the origin
    (b, c), (d, _) = plane["points"]["init"], plane["points"]["final"]
    assert (row.dist_init, row.dist_final) == (math.hypot(b, c), d) and d > 0 and c > 0
    assert 0 <= result["final"]["train_kl"] and "cka_stage3" in result["final"]
    for kw, message in (
        (dict(surface=3), "surface=3: must be 0 or an integer >= 5"),
        (
            dict(surface=7, norm="batch"),
            "surface=7: needs one teacher of the student's architecture",
        ),
        (
            dict(surface=7, teachers=(t, TeacherConfig(**{**NET, "seed": 1}))),
            "surface=7: needs one",
        ),
        (dict(surface=7, init="interpolate", init_lambda=1.0), "surface=7: needs a start off"),
    ):
        with pytest.raises(ConfigError, match=message):
            StudentConfig(**{**NET, "teachers": (t,), **kw})
