"""The runtime wheel: built from the repository, installed with its dependencies (no extras)
in a fresh virtualenv, it holds the engine only and its command line works without the
development kit.

The wheel is built from a copy of what the Dockerfile copies (pyproject.toml, README.md,
src/), so that a stale ``build/`` or ``*.egg-info`` of the checkout cannot leak into it and
the checkout is left as it was. The fresh virtualenv has no pip of its own: this test
environment's pip installs into it (``pip --python``), from the indexes and the pip cache
that ``make venv`` already used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
DEV_ONLY = ("ivr_devkit", "sandbox/", "simphones/", "pgcluster", "demo.py")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def _check(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    project = base / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, project / name)
    shutil.copytree(
        REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = base / "dist"
    pip = [sys.executable, "-m", "pip"]
    _check(_run([*pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(project)], base))
    [built] = dist.glob("ivr_engine-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path) -> Path:
    """A fresh virtualenv with the wheel and its runtime dependencies installed; its bin/."""
    root = wheel.parent.parent / "venv"
    _check(_run([sys.executable, "-m", "venv", "--without-pip", str(root)], root.parent))
    python = root / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install"]
    _check(_run([*install, "-q", "--no-compile", str(wheel)], root.parent))
    return root / "bin"


def test_the_wheel_holds_the_engine_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "ivr_engine/cli.py" in names
    assert "ivr_engine/web/panel/templates/base.html" in names  # package data is still shipped
    leaked = [name for name in names if any(part in name for part in DEV_ONLY)]
    assert leaked == []
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert requires, "the runtime dependencies are missing from the metadata"
    assert not [line for line in requires if "aiosmtpd" in line or "pytest" in line]


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["sounds", "--help"]])
def test_the_command_line_runs_from_the_wheel(venv: Path, argv: list[str]) -> None:
    done = _run([str(venv / "ivr-engine"), *argv], venv, timeout=60)
    _check(done)
    assert "usage: ivr-engine" in done.stdout


@pytest.mark.parametrize("argv", [["demo"], ["sandbox", "status"]])
def test_devkit_commands_say_how_to_install_the_kit(venv: Path, argv: list[str]) -> None:
    done = _run([str(venv / "ivr-engine"), *argv], venv, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "development kit" in line
    assert "pip install -e ./devkit" in line
