from pathlib import Path

import pytest

from ivr_engine.config import load_settings
from ivr_engine.errors import ConfigError


def test_secrets_have_no_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (
        "IVR_DATABASE_URL",
        "IVR_ARI_PASSWORD",
        "IVR_AMI_SECRET",
        "IVR_API_TOKEN",
        "IVR_LINK_SECRET",
    ):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings()
    for key in (
        "IVR_DATABASE_URL",
        "IVR_ARI_PASSWORD",
        "IVR_AMI_SECRET",
        "IVR_API_TOKEN",
        "IVR_LINK_SECRET",
    ):
        assert key in str(info.value)


def test_config_file_and_routes(tmp_path: Path) -> None:
    cfg = tmp_path / "ivr.env"
    cfg.write_text(
        "IVR_DATABASE_URL=postgresql://u@127.0.0.1/db\n"
        "IVR_ARI_PASSWORD=a\nIVR_AMI_SECRET=b\nIVR_API_TOKEN=c\nIVR_LINK_SECRET=l\n"
        'IVR_DIAL_ROUTES={"*": "PJSIP/{number}@trunk", "+39": "PJSIP/{number}@it"}\n'
        "IVR_RETRY_DELAY=2.5\n"
    )
    s = load_settings(cfg)
    assert s.retry_delay == 2.5
    assert s.dial_routes["+39"] == "PJSIP/{number}@it"
    assert s.api_token.get_secret_value() == "c"


def test_routes_need_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="IVR_DIAL_ROUTES"):
        load_settings(
            database_url="postgresql://x",
            ari_password="a",
            ami_secret="b",
            api_token="c",
            dial_routes={"+39": "PJSIP/{number}@it"},
        )


def test_missing_config_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.env")


def test_settings_from_an_ivr_mapping() -> None:
    from ivr_engine.config import settings_from_env

    s = settings_from_env(
        {
            "IVR_ARI_URL": "http://127.0.0.1:18088/ari",
            "IVR_ARI_PASSWORD": "p",
            "IVR_AMI_SECRET": "s",
            "IVR_AMI_PORT": "15038",
            "IVR_DIAL_ROUTES": '{"*": "PJSIP/phone-network/sip:{number}@127.0.0.1:5070"}',
        },
        database_url="postgresql://x@127.0.0.1/db",
        api_token="t",
        link_secret="l",
        ring_timeout=4,
    )
    assert s.ami_port == 15038 and s.ring_timeout == 4
    assert s.dial_routes == {"*": "PJSIP/phone-network/sip:{number}@127.0.0.1:5070"}


def test_cel_database_defaults_to_the_engine_database(tmp_path: Path) -> None:
    cfg = tmp_path / "ivr.env"
    cfg.write_text(
        "IVR_DATABASE_URL=postgresql://u@127.0.0.1/engine\n"
        "IVR_ARI_PASSWORD=a\nIVR_AMI_SECRET=b\nIVR_API_TOKEN=c\nIVR_LINK_SECRET=l\n"
    )
    assert load_settings(cfg).cel_dsn == "postgresql://u@127.0.0.1/engine"
    with cfg.open("a") as out:
        out.write("IVR_CEL_DATABASE_URL=postgresql://u@127.0.0.1/asterisk_cel\n")
    assert load_settings(cfg).cel_dsn == "postgresql://u@127.0.0.1/asterisk_cel"


def test_amd_settings_become_amd_arguments(tmp_path: Path) -> None:
    cfg = tmp_path / "ivr.env"
    base = (
        "IVR_DATABASE_URL=postgresql://u@127.0.0.1/engine\n"
        "IVR_ARI_PASSWORD=a\nIVR_AMI_SECRET=b\nIVR_API_TOKEN=c\nIVR_LINK_SECRET=l\n"
    )
    cfg.write_text(base)
    # AMD()'s positional arguments; the two empty ones keep amd.conf's word lengths.
    assert load_settings(cfg).amd_arguments == "2500,1500,800,5000,,,3"
    cfg.write_text(base + "IVR_AMD_GREETING_MS=2000\nIVR_AMD_MAX_WORDS=5\n")
    assert load_settings(cfg).amd_arguments == "2500,2000,800,5000,,,5"
    cfg.write_text(base + "IVR_AMD_TOTAL_ANALYSIS_MS=0\n")
    with pytest.raises(ConfigError, match="IVR_AMD_TOTAL_ANALYSIS_MS"):
        load_settings(cfg)
