"""The runtime wheel: built from the repository, installed with its dependencies (no extras,
pinned by requirements.lock) in a fresh virtualenv, it holds the engine only, with its
migrations, prompt texts and Asterisk templates; its command line works without the
development kit, and from an empty directory it migrates a database and serves.

The wheel is built from a copy of what the Dockerfile copies (pyproject.toml, README.md,
LICENSE, src/), so that a stale ``build/`` or ``*.egg-info`` of the checkout cannot leak into
it and the checkout is left as it was. The fresh virtualenv has no pip of its own: this test
environment's pip installs into it (``pip --python``), from the indexes and the pip cache
that ``make venv`` already used.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import aiohttp
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
    for name in ("pyproject.toml", "README.md", "LICENSE"):
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
    lock = ["--constraint", str(REPO / "requirements.lock")]
    _check(_run([*install, "-q", "--no-compile", *lock, str(wheel)], root.parent))
    return root / "bin"


def test_the_wheel_holds_the_engine_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "ivr_engine/cli.py" in names
    assert "ivr_engine/web/panel/templates/base.html" in names  # package data is still shipped
    migrations = sorted(p.name for p in (REPO / "src/ivr_engine/migrations").glob("*.sql"))
    assert migrations and all(f"ivr_engine/migrations/{m}" in names for m in migrations)
    assert {"ivr_engine/prompt_texts/en.txt", "ivr_engine/prompt_texts/it.txt"} <= set(names)
    assert "ivr_engine/asterisk_conf/manager.conf" in names
    assert "ivr_engine/web/api/docs.html" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
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


def _name(line: str) -> str:
    return re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()


def test_the_lock_pins_the_whole_runtime(venv: Path) -> None:
    """requirements.lock is complete and current: installing the wheel with it as
    constraints gives exactly the pinned set (scripts/lock.sh regenerates it)."""
    done = _run([sys.executable, "-m", "pip", "--python", str(venv / "python"), "freeze"], REPO)
    _check(done)
    installed = {_name(x): x for x in done.stdout.splitlines() if not x.startswith("ivr-engine")}
    lock = (REPO / "requirements.lock").read_text().splitlines()
    pinned = {_name(x): x for x in lock if x and not x.startswith("#")}
    assert {k: v.lower() for k, v in installed.items()} == {k: v.lower() for k, v in pinned.items()}


def test_version(venv: Path) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    done = _run([str(venv / "ivr-engine"), "--version"], venv, timeout=60)
    _check(done)
    assert done.stdout.strip() == f"ivr-engine {project['version']}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_migrate_and_serve_from_an_empty_directory(
    venv: Path, dsn: str, tmp_path: Path
) -> None:
    """Nothing of the checkout around: the migrations and templates come from the wheel."""
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    http_port = _free_port()
    env = {
        **_env(),
        "IVR_DATABASE_URL": dsn,
        "IVR_ARI_URL": f"http://127.0.0.1:{_free_port()}/ari",  # Asterisk is away
        "IVR_ARI_PASSWORD": "ari-secret",
        "IVR_AMI_PORT": str(_free_port()),
        "IVR_AMI_SECRET": "ami-secret",
        "IVR_API_TOKEN": "wheel-token",
        "IVR_LINK_SECRET": "link-secret",
        "IVR_HTTP_PORT": str(http_port),
        "IVR_LOG_FORMAT": "json",
    }
    engine = str(venv / "ivr-engine")
    code, out, err = await _command([engine, "migrate"], empty, env)
    assert code == 0, err
    shipped = sorted(p.name for p in (REPO / "src/ivr_engine/migrations").glob("*.sql"))
    assert out.strip() == "applied: " + ", ".join(shipped)

    code, out, err = await _command(
        [engine, "asterisk-conf", "render", "--out", "asterisk"], empty, env
    )
    assert code == 2 and "CEL_DB_PASSWORD" in err  # trust auth: no password to write
    code, _, err = await _command(
        [
            *(engine, "asterisk-conf", "render", "--out", "asterisk"),
            *("--cel-user", "asterisk_cel", "--cel-password", "cel-secret"),
        ],
        empty,
        env,
    )
    assert code == 0, err
    assert "ami-secret" in (empty / "asterisk" / "manager.conf").read_text()
    cel = (empty / "asterisk" / "cel_pgsql.conf").read_text()
    assert "user=asterisk_cel" in cel.replace(" ", "") and "cel-secret" in cel

    serve = await asyncio.create_subprocess_exec(
        engine, "serve", cwd=empty, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        status = await _first_answer(f"http://127.0.0.1:{http_port}/healthz", serve)
        assert status == 503  # PostgreSQL is there, Asterisk is not
        serve.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(serve.communicate(), 30)
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
    assert serve.returncode == 0, stderr.decode()[-3000:]
    records = [json.loads(line) for line in stderr.decode().splitlines()]  # every line is JSON
    events = [r["event"] for r in records]
    assert "http.listening" in events and "engine.stopping" in events
    [listening] = [r for r in records if r["event"] == "http.listening"]
    assert listening["event_loop"] == "uvloop.Loop"  # IVR_EVENT_LOOP's default, from the lock
    [access] = [r for r in records if r["event"] == "http.access"]
    assert access["path"] == "/healthz" and access["status"] == 503
    assert any(r.get("logger", "").startswith("panoramisk") for r in records), events


async def _command(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _first_answer(url: str, process: asyncio.subprocess.Process) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            assert process.returncode is None, "ivr-engine serve exited"
            try:
                async with http.get(url) as resp:
                    return resp.status
            except aiohttp.ClientConnectionError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
