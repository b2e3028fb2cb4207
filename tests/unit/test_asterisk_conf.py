"""``ivr-engine asterisk-conf render``: the shipped snippets filled from the engine's settings,
never with a placeholder left, least-privilege AMI rights, private files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ivr_engine import asterisk_conf
from ivr_engine.asterisk_conf import TEMPLATES, SipSide, fill, render, values_from_settings
from ivr_engine.cli import main
from ivr_engine.config import Settings
from ivr_engine.errors import ConfigError
from tests.unit.test_sandbox_render import section

SECRETS = {"ari_password": "ari-pw-0123456789", "ami_secret": "ami-pw-9876543210"}


def settings(**kw: object) -> Settings:
    values: dict[str, object] = {
        "database_url": "postgresql://u:p@127.0.0.1/db",
        "api_token": "t",
        "link_secret": "l",
        "ari_url": "http://127.0.0.1:8089/ari",
        "ari_user": "engine-a",
        "ari_app": "consult",
        "ami_port": 5039,
        "ami_user": "engine-m",
        **SECRETS,
        **kw,
    }
    return Settings(**values)  # type: ignore[arg-type]


def test_every_snippet_is_filled_from_the_settings() -> None:
    out = render(values_from_settings(settings(), SipSide(port=5062)))
    assert sorted(out) == sorted(TEMPLATES)
    for name, text in out.items():
        assert asterisk_conf.PLACEHOLDER.search(text) is None, name
    assert section(out["http.conf"], "general")["bindport"] == ["8089"]
    assert section(out["ari.conf"], "engine-a")["password"] == [SECRETS["ari_password"]]
    assert section(out["manager.conf"], "general")["port"] == ["5039"]
    ami = section(out["manager.conf"], "engine-m")
    assert ami["secret"] == [SECRETS["ami_secret"]]
    assert ami["read"] == ["reporting"] and ami["write"] == ["reporting"]
    assert section(out["pjsip.conf"], "ivr-transport-udp")["bind"] == ["0.0.0.0:5062"]
    assert "Stasis(consult,inbound,${EXTEN})" in " ".join(
        section(out["extensions.conf"], "ivr-inbound")["exten"]
    )
    assert section(out["prometheus.conf"], "general")["enabled"] == ["yes"]
    amd = section(out["extensions.conf"], "ivr-amd")["same"]
    assert "n(verdict),Stasis(consult,amd,${AMDSTATUS},${AMDCAUSE})" in amd


def test_a_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="AMI_SECRET"):
        fill("secret = @@AMI_SECRET@@\n", {}, "manager.conf")


@pytest.mark.parametrize("bad", ["a;b", "two\nlines", " padded", ""])
def test_a_value_asterisk_would_misread_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="AMI_SECRET"):
        fill("secret = @@AMI_SECRET@@\n", {"AMI_SECRET": bad}, "manager.conf")


def test_the_command_writes_private_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "engine.env"
    env.write_text(
        "IVR_DATABASE_URL=postgresql://u:p@127.0.0.1/db\nIVR_API_TOKEN=t\nIVR_LINK_SECRET=l\n"
        f"IVR_ARI_PASSWORD={SECRETS['ari_password']}\nIVR_AMI_SECRET={SECRETS['ami_secret']}\n"
    )
    for name in ("IVR_ARI_PASSWORD", "IVR_AMI_SECRET", "IVR_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "asterisk"
    argv = ["--config", str(env), "asterisk-conf", "render", "--out", str(out)]
    assert main([*argv, "--rtp-start", "30000", "--rtp-end", "30999"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(TEMPLATES)
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "@@" not in path.read_text()
    assert section((out / "rtp.conf").read_text(), "general")["rtpstart"] == ["30000"]
    assert section((out / "ari.conf").read_text(), "ivr-engine")["password"] == [
        SECRETS["ari_password"]
    ]
    assert f"wrote {out / 'ari.conf'}" in capsys.readouterr().out


def test_a_secret_with_a_semicolon_stops_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in {
        "IVR_DATABASE_URL": "postgresql://u:p@127.0.0.1/db",
        "IVR_API_TOKEN": "t",
        "IVR_LINK_SECRET": "l",
        "IVR_ARI_PASSWORD": "half;comment",
        "IVR_AMI_SECRET": "fine-secret",
    }.items():
        monkeypatch.setenv(key, value)
    assert main(["asterisk-conf", "render", "--out", str(tmp_path / "x")]) == 2
    assert "ARI_PASSWORD" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
