"""One settings module: every KDREPRO_* variable is read in kdrepro/settings.py, and documented in
its table."""

import re

from kdrepro import paths, settings, store
from kdrepro.paths import REPO


def test_only_the_settings_module_reads_the_environment():
    readers = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "kdrepro").rglob("*.py")
        if "os.environ" in p.read_text() and p.name != "settings.py"
    ]
    assert readers == []


def test_every_variable_the_package_names_is_in_the_table():
    named = set()
    for p in (REPO / "kdrepro").rglob("*.py"):
        named |= set(re.findall(r"KDREPRO_[A-Z_]+", p.read_text()))
    assert named == set(settings.NAMES)
    table = {
        row.split("`")[1] for row in settings.__doc__.splitlines() if row.startswith("| `KDREPRO_")
    }
    assert table == set(settings.NAMES)


def test_settings_are_read_when_used(monkeypatch, tmp_path):
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("KDREPRO_RESULTS", str(tmp_path / "r"))
    monkeypatch.setenv("KDREPRO_DATA", "somewhere")
    assert paths.cache_dir("x") == tmp_path / "c" / "x" and (tmp_path / "c" / "x").is_dir()
    assert store.results_dir() == tmp_path / "r"
    assert (
        paths.data_root() == REPO / "somewhere"
    )  # relative to the repository, from any working directory
    monkeypatch.setenv("KDREPRO_CKPT_SECONDS", "2.5")
    monkeypatch.setenv("KDREPRO_STORE_ONLY", "1")
    assert (
        settings.checkpoint_seconds() == 2.5
        and settings.store_only()
        and not settings.compile_steps()
    )
