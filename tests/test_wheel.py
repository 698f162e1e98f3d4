"""A non-editable install has every module: the wheel built from pyproject.toml holds the whole
package."""

import subprocess
import sys
import zipfile

from kdrepro.paths import REPO


def test_the_wheel_holds_every_module(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("kdrepro-*.whl")
    inside = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "kdrepro").rglob("*.py")}
    assert modules and modules <= inside, sorted(modules - inside)
    assert "kdrepro/chapters/self_vs_ensemble.py" in inside
