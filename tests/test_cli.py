"""The command line: expected errors are one line on stderr and exit 2; --debug shows their
traceback."""

import pytest

from kdrepro import data
from kdrepro.__main__ import main


def one_line_error(capsys, code, expected):
    """Exit 2, and the error is one line (the last; a progress bar of work already started may
    precede it)."""
    err = capsys.readouterr().err
    lines = err.split("\n")
    assert code == 2 and lines[-1] == "" and lines[-2].split("\r")[-1].startswith("error: "), err
    assert expected in lines[-2] and err.count("error: ") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "lenet_mnist", "--seeds", "-1"], "argument --seeds: '-1' is not an integer >= 0"),
        (["run", "lenet_mnist", "--seeds", "x"], "argument --seeds: 'x' is not an integer >= 0"),
        (["run", "lenet_mnist", "--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
        (["run", "no_such_chapter"], "invalid choice: 'no_such_chapter'"),
        (["run", "lenet_mnist", "--pack", "0"], "argument --pack: '0' is not an integer >= 1"),
    ],
)
def test_bad_arguments(argv, expected, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    one_line_error(capsys, e.value.code, expected)


def test_expected_errors_are_one_line(tmp_store, monkeypatch, capsys):
    one_line_error(
        capsys, main(["run", "lenet_mnist", "--profile", "smoke", "--store-only"]), "is not in"
    )
    one_line_error(
        capsys,
        main(["run", "lenet_mnist", "--profile", "smoke", "--seeds", "1", "1"]),
        "each trial needs its own seed",
    )
    one_line_error(
        capsys,
        main(["run", "lenet_mnist", "--profile", "smoke", "--device", "tpu"]),
        "device='tpu'",
    )
    one_line_error(
        capsys,
        main(["run", "lenet_mnist", "--executor", "ray", "--pack", "4"]),
        "no --store-only or --pack",
    )
    monkeypatch.setenv("KDREPRO_DATA", str(tmp_store / "nowhere"))
    data._load.cache_clear()
    one_line_error(capsys, main(["run", "lenet_mnist", "--profile", "smoke"]), "mnist: not found")
    with pytest.raises(data.DatasetMissing):  # --debug: the exception itself, with its traceback
        main(["run", "lenet_mnist", "--profile", "smoke", "--debug"])
    data._load.cache_clear()


def test_list_names_each_experiment_with_its_profiles(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("lenet_mnist (smoke, budget, paper): Fig. 2")
    assert out[4].startswith("train_agreement (smoke, budget, gpu, paper): Fig. 5")


def test_chapters_prints_the_registry_on_one_line(capsys, monkeypatch):
    from kdrepro import chapters

    book = (("lenet_mnist", True), ("self_vs_ensemble", False), ("augmentation", True))
    monkeypatch.setattr(chapters, "BOOK", book)
    assert main(["chapters"]) == 0
    assert capsys.readouterr().out == "lenet_mnist self_vs_ensemble augmentation\n"
    assert main(["chapters", "--published"]) == 0
    assert capsys.readouterr().out == "lenet_mnist augmentation\n"


def test_summary_writes_the_matrix_and_the_detail_into_one_folder(tmp_path, capsys):
    from kdrepro import report

    assert main(["summary", "--out-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(report.PAGES)
    matrix, detail, fresh = ((tmp_path / name).read_text() for name in report.PAGES)
    assert matrix.startswith("Judged here so far: ")
    assert fresh.startswith("* {doc}`lenet_mnist`: ") and "core checks keep their outcome" in fresh
    assert "\n\n| # | finding | chapter | paper | here | verdict |\n" in matrix
    assert "### Compute" in detail and "| **total** |" in detail
