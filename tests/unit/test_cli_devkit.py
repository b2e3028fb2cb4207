"""The engine and its development kit: the engine never imports the kit, and ``ivr-engine
demo`` / ``ivr-engine sandbox`` hand over to the kit, or say how to install it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ivr_devkit
from ivr_engine.cli import main

# Imports every module of the engine (not __main__, which runs the command line) and prints
# the dev kit modules that came along.
_IMPORT_ALL = """
import importlib, pkgutil, sys
import ivr_engine
for mod in pkgutil.walk_packages(ivr_engine.__path__, "ivr_engine."):
    if mod.name != "ivr_engine.__main__":
        importlib.import_module(mod.name)
print(sorted(name for name in sys.modules if name.split(".")[0] == "ivr_devkit"))
"""

# The engine's command line in an interpreter where the dev kit cannot be found.
_WITHOUT_DEVKIT = """
import sys
hidden = sys.argv[1]
sys.path[:] = [p for p in sys.path if p.rstrip("/") != hidden]
from ivr_engine.cli import main
sys.exit(main(sys.argv[2:]))
"""

DEVKIT_SRC = str(Path(ivr_devkit.__file__).resolve().parents[1])


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_no_engine_module_imports_the_devkit() -> None:
    done = _python(_IMPORT_ALL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["demo"], ["demo", "--keep"], ["sandbox", "status"]])
def test_without_the_devkit_its_commands_say_how_to_install_it(argv: list[str]) -> None:
    done = _python(_WITHOUT_DEVKIT, DEVKIT_SRC, *argv)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"`{argv[0]}` is part of the development kit" in lines[0]
    assert "pip install -e ./devkit" in lines[0]


def test_a_module_missing_inside_the_devkit_is_not_taken_for_a_missing_kit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ivr_devkit.cli", None)
    with pytest.raises(ModuleNotFoundError):
        main(["demo"])


def test_sandbox_status_is_run_by_the_devkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_SANDBOX_CACHE", str(tmp_path))
    assert main(["sandbox", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["built"] is False
    assert status["running"] is False
    assert status["root"] == str(tmp_path / "asterisk-sid")
