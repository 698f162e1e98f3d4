"""What a reader of the HTML sees: prose, figures and tables. Code cells are hidden (the
notebook-level myst-nb setting `remove_code_source`, which also hides papermill's injected
parameters cell), except cells that show on purpose how a chapter calls the library; those fit in
100 columns."""

import ast
import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_is_hidden_unless_shown_on_purpose_and_fits_100_columns(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("mystnb", {}).get("remove_code_source") is True
    shown = [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code"
        and c["metadata"].get("mystnb", {}).get("remove_code_source") is False
    ]
    for cell in shown:
        assert "parameters" not in cell["metadata"].get("tags", [])
        for line in "".join(cell["source"]).splitlines():
            assert len(line) <= 100, f"{path.name}: shown code line over 100 columns: {line!r}"
    params = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and params[0] not in shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_compiles_on_this_python(path):
    """Unpublished chapters run only in smoke, late in CI; a syntax error (say, a backslash in an
    f-string expression, legal from Python 3.12 only) should fail in seconds instead."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(cells):
        lines = "".join(cell["source"]).splitlines()
        src = "\n".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!")))
        try:
            ast.parse(src)
        except SyntaxError as e:
            pytest.fail(f"{path.name}: code cell {i} does not compile: {e}")


def test_the_makefile_the_toc_and_the_notebooks_follow_the_chapter_registry():
    """`kdrepro.chapters.BOOK` is the one list of chapters: the Makefile reads it (through `python
    -m kdrepro chapters`), the table of contents holds its published chapters, and every chapter has
    a notebook (fidelity, a notebook without runs, comes first; history, an appendix that reads the
    first runs, last)."""
    import subprocess
    import sys

    import yaml

    from kdrepro import chapters

    root = BOOK.parent
    published = ["fidelity", *chapters.PUBLISHED, "history"]
    every = ["fidelity", *chapters.CHAPTERS, "history"]
    dry = subprocess.run(
        ["make", "-n", "test", "smoke", f"PY={sys.executable}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--nbval-lax " + " ".join(f"book/{n}.ipynb" for n in published) + "\n" in dry
    assert f"for c in {' '.join(every)}; do" in dry
    parts = yaml.safe_load((root / "_toc.yml").read_text())["parts"]
    toc = [[entry["file"] for entry in part["chapters"]] for part in parts]
    # the chapters are numbered as the prose cites them (fidelity 1, then BOOK's order), which holds
    # while the published chapters are the first of BOOK; the appendices are not numbered
    assert list(chapters.PUBLISHED) == list(chapters.CHAPTERS)[: len(chapters.PUBLISHED)]
    assert [part.get("numbered", False) for part in parts] == [True, False]
    assert toc == [
        [f"book/{name}" for name in published[:-1]],
        ["book/making", "book/history", "book/references"],
    ]
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(every)
