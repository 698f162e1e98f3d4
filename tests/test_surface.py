"""Fig. 6c's loss plane: the grid puts the teacher and the final student where they are, the teacher is the minimum,
and a student run asking for a plane stores it beside its results."""

import pytest
import torch

from kdrepro import data, runs, surface, train
from kdrepro.config import StudentConfig, TeacherConfig
from kdrepro.errors import ConfigError
from kdrepro.losses import kd_loss

NET = dict(dataset="mnist", model="preresnet8", norm="layer", train_size=100, epochs=2, batch_size=50,
           augment="crop", crop_pad=2, evals=1)


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    monkeypatch.setenv("KDREPRO_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "cache"))


def test_the_plane_places_its_points_and_the_teacher_is_its_minimum():
    torch.manual_seed(0)
    cfg = TeacherConfig(**NET)
    teacher, init, final = (train.new_model(cfg) for _ in range(3))
    for net, seed in ((teacher, 1), (init, 2), (final, 3)):
        torch.manual_seed(seed)
        for p in net.parameters():
            p.data += 0.3 * torch.randn_like(p)
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    out = surface.plane(train.new_model(cfg), teacher, init.state_dict(), final.state_dict(), x, 4.0, 7,
                        torch.device("cpu"))
    loss = torch.tensor(out["loss"])
    xs, ys = out["xs"], out["ys"]
    assert loss.shape == (7, 7) and xs[1] == 0.0 and ys[1] == 0.0  # n = 7: the teacher at index 1 of each axis
    assert out["points"]["final"][0] == pytest.approx(xs[5]) and out["points"]["init"][1] == pytest.approx(ys[5])
    xb = data.unitcube(x).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for net, (i, j) in ((teacher, (1, 1)), (final, (1, 5))):
            direct = kd_loss(net.eval()(xb), teacher.eval()(xb), 4.0).item()
            assert loss[i, j].item() == pytest.approx(direct, rel=1e-4)
    # the cross-entropy to the teacher is smallest at the teacher (there it is the teacher's own entropy)
    assert loss.min().item() == pytest.approx(loss[1, 1].item(), rel=1e-5) and out["barrier"] >= 0
    with pytest.raises(ValueError, match="surface=8: needs n >= 7 with n - 1 a multiple of 6"):
        surface.plane(train.new_model(cfg), teacher, init.state_dict(), final.state_dict(), x, 4.0, 8,
                      torch.device("cpu"))


def test_a_student_run_stores_its_plane_and_bad_requests_are_one_line(tmp_store):
    t = TeacherConfig(**NET)
    s = StudentConfig(**NET, teachers=(t,), init="interpolate", init_lambda=0.5, init_seed=99, surface=7)
    result = runs.run(s, progress=False)
    plane = result["surface"]
    assert len(plane["loss"]) == 7 and plane["images"] == 100 and plane["temperature"] == 4.0
    assert result["final"]["loss_barrier"] == plane["barrier"]
    assert 0 <= result["final"]["train_kl"] and "cka_stage3" in result["final"]
    for kw, message in ((dict(surface=12), "surface=12: must be 0 or n >= 7"),
                        (dict(surface=7, norm="batch"), "surface=7: needs one teacher of the student's architecture"),
                        (dict(surface=7, teachers=(t, TeacherConfig(**{**NET, "seed": 1}))), "surface=7: needs one")):
        with pytest.raises(ConfigError, match=message):
            StudentConfig(**{**NET, "teachers": (t,), **kw})
