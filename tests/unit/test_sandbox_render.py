"""The sandbox's Asterisk configs, rendered from the sysadmin templates without a chroot."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from ivr_devkit.errors import SandboxError
from ivr_devkit.sandbox import SandboxInfo
from ivr_devkit.sandbox.chroot import apt_snippets
from ivr_devkit.sandbox.render import (
    OPERATORS,
    PLACEHOLDER,
    CelDatabase,
    Ports,
    Secrets,
    load_or_create_secrets,
    render_configs,
    render_text,
    write_configs,
)
from ivr_devkit.sandbox.sounds import install_prompts, link_languages, resolve_in_root
from ivr_engine import asterisk_conf

Section = tuple[str, dict[str, list[str]]]


def sections(text: str) -> list[Section]:
    """A small reader for Asterisk's config syntax: [name](templates), key = value, ; comments."""
    found: list[Section] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if header:
            found.append((header.group(1), {}))
            continue
        key, _, value = line.partition("=")
        assert found, f"option outside a section: {raw!r}"
        found[-1][1].setdefault(key.strip(), []).append(value.lstrip(">").strip())
    return found


def section(text: str, name: str) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for title, options in sections(text):
        if title == name:
            for key, values in options.items():
                merged.setdefault(key, []).extend(values)
    assert merged, f"no [{name}] section"
    return merged


@pytest.fixture
def creds() -> Secrets:
    return Secrets(
        ari_password="ari-Secret-1",
        ami_secret="ami-Secret-2",
        operators={name: f"op-Secret-{name}" for name in OPERATORS},
        bench_ami_secret="bench-Secret-3",
    )


@pytest.fixture
def rendered(creds: Secrets) -> dict[str, str]:
    return render_configs(Ports(), creds)


def test_no_placeholder_left(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        assert "@@" not in text, name
        assert PLACEHOLDER.search(text) is None, name


def test_secrets_are_in_place(rendered: dict[str, str], creds: Secrets) -> None:
    assert section(rendered["ari.conf"], "ivr-engine")["password"] == [creds.ari_password]
    assert section(rendered["manager.conf"], "ivr-engine")["secret"] == [creds.ami_secret]
    for name in OPERATORS:
        auths = [
            opts
            for title, opts in sections(rendered["pjsip.conf"])
            if title == name and opts.get("username") == [name]
        ]
        assert len(auths) == 1
        assert auths[0]["password"] == [creds.operators[name]]


def test_everything_binds_to_loopback(rendered: dict[str, str]) -> None:
    http = section(rendered["http.conf"], "general")
    assert http["enabled"] == ["yes"]
    assert http["bindaddr"] == ["127.0.0.1"]
    assert http["bindport"] == ["18088"]
    assert int(http["sessionlimit"][0]) > 100

    ami = section(rendered["manager.conf"], "general")
    assert ami["bindaddr"] == ["127.0.0.1"]
    assert ami["port"] == ["15038"]

    transport = section(rendered["pjsip.conf"], "ivr-transport-udp")
    assert transport["bind"] == ["127.0.0.1:15060"]
    for endpoint in ("phone-network", *OPERATORS):
        opts = [o for t, o in sections(rendered["pjsip.conf"]) if t == endpoint and "aors" in o]
        opts = opts or [section(rendered["pjsip.conf"], endpoint)]
        assert opts[0]["media_address"] == ["127.0.0.1"], endpoint


def test_write_timeouts_raised(rendered: dict[str, str]) -> None:
    assert int(section(rendered["ari.conf"], "general")["websocket_write_timeout"][0]) >= 1000
    assert int(section(rendered["manager.conf"], "ivr-engine")["writetimeout"][0]) >= 1000


def test_ami_rights_are_the_least_the_health_check_needs(rendered: dict[str, str]) -> None:
    user = section(rendered["manager.conf"], "ivr-engine")
    for key in ("read", "write"):
        # CoreStatus needs "reporting"; "command" would be the whole CLI.
        assert user[key] == ["reporting"]
    assert user["permit"] == ["127.0.0.1/255.255.255.255"]


def test_the_bench_user_and_context_are_the_sandbox_s_only(rendered: dict[str, str]) -> None:
    bench = section(rendered["manager.conf"], "ivr-bench")
    assert (bench["read"], bench["write"]) == (["user"], ["originate"])
    assert bench["secret"] == ["bench-Secret-3"]
    assert bench["permit"] == ["127.0.0.1/255.255.255.255"]
    steps = " ".join(section(rendered["extensions.conf"], "ivr-bench")["same"])
    assert "A(ivr-engine/client_connecting)" in steps and "m(ivr-bench-hold)" in steps
    hold = section(rendered["musiconhold.conf"], "ivr-bench-hold")
    assert hold["announcement"] == ["ivr-engine/connecting_you"]
    # The files a sysadmin gets from the engine have neither.
    for name in ("manager.conf", "extensions.conf"):
        assert "ivr-bench" not in asterisk_conf.template(name).read_text(encoding="utf-8")


def test_asterisk_serves_its_own_metrics(rendered: dict[str, str]) -> None:
    prometheus = section(rendered["prometheus.conf"], "general")
    assert prometheus["enabled"] == ["yes"] and prometheus["uri"] == ["metrics"]
    assert "res_prometheus.so" not in section(rendered["modules.conf"], "modules")["noload"]


def test_dns_trap_avoided(rendered: dict[str, str]) -> None:
    noload = section(rendered["modules.conf"], "modules")["noload"]
    assert "res_resolver_unbound.so" in noload
    # ARI needs these: noloading them once broke the sandbox.
    for needed in ("res_ari.so", "app_stasis.so", "res_websocket_client.so", "chan_pjsip.so"):
        assert needed not in noload


def test_phone_network_and_operators(rendered: dict[str, str]) -> None:
    pjsip = rendered["pjsip.conf"]
    glob = section(pjsip, "global")
    order = glob["endpoint_identifier_order"][0].split(",")
    assert order.index("username") < order.index("ip")
    identify = section(pjsip, "phone-network-identify")
    assert identify["match"] == ["127.0.0.1"] and identify["endpoint"] == ["phone-network"]
    template = section(pjsip, "ivr-endpoint")
    assert template["context"] == ["ivr-inbound"]
    assert template["dtmf_mode"] == ["rfc4733"]
    assert template["direct_media"] == ["no"]
    assert template["allow"] == ["ulaw,alaw"]
    aor = section(pjsip, "ivr-operator-aor")
    assert aor["max_contacts"] == ["1"] and aor["remove_existing"] == ["yes"]


def test_dialplan_hands_calls_to_stasis_with_fallback(rendered: dict[str, str]) -> None:
    dialplan = rendered["extensions.conf"]
    inbound = section(dialplan, "ivr-inbound")["exten"]
    assert "s,1,Stasis(ivr-engine,inbound,${EXTEN})" in inbound
    assert sum("Stasis(ivr-engine,inbound,${EXTEN})" in line for line in inbound) == 3
    fallback = section(dialplan, "ivr-unavailable")
    steps = " ".join(fallback["exten"] + fallback["same"])
    assert "Answer()" in steps
    assert "Playback(ivr-engine/service_unavailable)" in steps
    assert "Playback(ss-noservice)" in steps
    assert fallback["same"][-1].endswith("Hangup()")


def test_dialplan_sends_answers_through_machine_detection(rendered: dict[str, str]) -> None:
    amd = section(rendered["extensions.conf"], "ivr-amd")
    steps = amd["exten"] + amd["same"]
    assert steps[0].startswith("s,1,GotoIf($[${IFMODULE(app_amd.so)}]?detect)")
    assert "n(detect),AMD(${IVR_AMD})" in steps
    assert "n(verdict),Stasis(ivr-engine,amd,${AMDSTATUS},${AMDCAUSE})" in steps
    assert "Set(AMDSTATUS=UNAVAILABLE)" in " ".join(steps)
    # app_amd declines to load without amd.conf, and nothing may noload it.
    assert section(rendered["amd.conf"], "general")["silence_threshold"] == ["256"]
    modules = section(rendered["modules.conf"], "modules")
    assert {"app_amd.so", "func_module.so"} <= set(modules["load"])
    assert not {"app_amd.so", "func_module.so"} & set(modules["noload"])


def test_ports_from_env_are_used(creds: Secrets) -> None:
    ports = Ports.from_env({"IVR_SANDBOX_HTTP_PORT": "28088", "IVR_SANDBOX_SIP_PORT": "25060"})
    rendered = render_configs(ports, creds)
    assert section(rendered["http.conf"], "general")["bindport"] == ["28088"]
    assert section(rendered["pjsip.conf"], "ivr-transport-udp")["bind"] == ["127.0.0.1:25060"]
    rtp = section(rendered["rtp.conf"], "general")
    assert (rtp["rtpstart"], rtp["rtpend"]) == (["20000"], ["29999"])


@pytest.mark.parametrize("bad", ["http", "0", "70000"])
def test_bad_port_refused(bad: str) -> None:
    with pytest.raises(SandboxError):
        Ports.from_env({"IVR_SANDBOX_AMI_PORT": bad})


def test_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(SandboxError, match="NOPE"):
        render_text("secret = @@NOPE@@\n", {"OTHER": "x"}, "test.conf")


def test_secrets_generated_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "sandbox-secrets.json"
    first = load_or_create_secrets(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({first.ari_password, first.ami_secret, *first.operators.values()}) == 4
    assert all(len(s) >= 24 for s in (first.ari_password, first.ami_secret))
    assert set(first.operators) == set(OPERATORS)
    assert load_or_create_secrets(path) == first
    other = load_or_create_secrets(tmp_path / "elsewhere.json")
    assert other.ari_password != first.ari_password


def test_missing_secret_is_added_and_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"ari_password": "kept", "operators": {"operator1": "op1"}}))
    creds = load_or_create_secrets(path)
    assert creds.ari_password == "kept" and creds.operators["operator1"] == "op1"
    assert creds.ami_secret and creds.operators["operator2"]
    assert json.loads(path.read_text())["ami_secret"] == creds.ami_secret


def test_write_configs_reports_changes(tmp_path: Path, rendered: dict[str, str]) -> None:
    assert write_configs(tmp_path, rendered) is True
    assert write_configs(tmp_path, rendered) is False
    assert stat.S_IMODE((tmp_path / "ari.conf").stat().st_mode) == 0o600


def test_engine_env_points_at_sandbox() -> None:
    info = SandboxInfo(
        root=Path("/x"),
        ari_url="http://127.0.0.1:18088/ari",
        ari_user="ivr-engine",
        ari_password="p",
        ari_app="ivr-engine",
        ami_host="127.0.0.1",
        ami_port=15038,
        ami_user="ivr-engine",
        ami_secret="s",
        sip_port=15060,
        operators={"operator1": "o"},
    )
    env = info.engine_env()
    assert env["IVR_ARI_URL"] == "http://127.0.0.1:18088/ari"
    assert env["IVR_AMI_PORT"] == "15038"
    routes = json.loads(env["IVR_DIAL_ROUTES"])
    assert routes == {"*": "PJSIP/phone-network/sip:{number}@127.0.0.1:5070"}


def test_prompts_follow_symlinks_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    sounds = root / "usr/share/asterisk/sounds"
    (sounds / "en_US_f_Allison").mkdir(parents=True)
    (sounds / "it_IT_m_Carlo").mkdir()
    (root / "etc/alternatives").mkdir(parents=True)
    # Debian's layout: an absolute link, meaningful only inside the chroot.
    (root / "etc/alternatives/asterisk-prompt-en").symlink_to(
        "/usr/share/asterisk/sounds/en_US_f_Allison"
    )
    (sounds / "en").symlink_to("/etc/alternatives/asterisk-prompt-en")
    assert resolve_in_root(root, "/usr/share/asterisk/sounds/en") == sounds / "en_US_f_Allison"

    link_languages(root)
    assert (sounds / "it").resolve() == (sounds / "it_IT_m_Carlo").resolve()

    src = tmp_path / "sounds"
    for lang in ("en", "it", "fr"):
        (src / lang / "ivr-engine").mkdir(parents=True)
        (src / lang / "ivr-engine" / "welcome.ulaw").write_bytes(lang.encode())
    (sounds / "en_US_f_Allison" / "ivr-engine").mkdir()
    (sounds / "en_US_f_Allison" / "ivr-engine" / "stale.ulaw").write_bytes(b"old")

    assert install_prompts(root, src) == ["en/ivr-engine", "fr/ivr-engine", "it/ivr-engine"]
    en = sounds / "en_US_f_Allison" / "ivr-engine"
    assert (en / "welcome.ulaw").read_bytes() == b"en"
    assert not (en / "stale.ulaw").exists()
    assert (sounds / "it_IT_m_Carlo" / "ivr-engine" / "welcome.ulaw").read_bytes() == b"it"
    assert (sounds / "fr" / "ivr-engine" / "welcome.ulaw").read_bytes() == b"fr"
    assert not (tmp_path / "usr").exists()  # nothing escaped the root


def test_apt_snippets_found_by_content(tmp_path: Path) -> None:
    (tmp_path / "10other").write_text('APT::Install-Recommends "false";\n')
    (tmp_path / "99snapshot").write_text('Acquire::Check-Valid-Until "false";\n')
    assert apt_snippets(tmp_path) == [tmp_path / "99snapshot"]


CEL = CelDatabase(
    host="127.0.0.1", port=54321, dbname="asterisk_cel", user="asterisk", password="c-1"
)


def test_cel_goes_to_the_given_database(creds: Secrets) -> None:
    rendered = render_configs(Ports(), creds, cel=CEL)
    assert all("@@" not in text for text in rendered.values())
    pgsql = section(rendered["cel_pgsql.conf"], "global")
    assert pgsql["hostname"] == ["127.0.0.1"] and pgsql["port"] == ["54321"]
    assert pgsql["dbname"] == ["asterisk_cel"] and pgsql["table"] == ["cel"]
    assert pgsql["user"] == ["asterisk"] and pgsql["password"] == ["c-1"]
    # The cel table keeps eventtime as UTC wall-clock time (migrations/0009_cel.sql).
    assert pgsql["usegmtime"] == ["yes"]
    general = section(rendered["cel.conf"], "general")
    assert general["enable"] == ["yes"]
    events = set(general["events"][0].split(","))
    assert {"CHAN_START", "ANSWER", "BRIDGE_ENTER", "BRIDGE_EXIT", "HANGUP", "CHAN_END"} <= events
    modules = section(rendered["modules.conf"], "modules")
    assert "cel_pgsql.so" not in modules["noload"]
    assert "cel_pgsql.so" in modules["load"]


def test_without_cel_database_cel_pgsql_stays_unloaded(rendered: dict[str, str]) -> None:
    assert "cel_pgsql.so" in section(rendered["modules.conf"], "modules")["noload"]
    assert not sections(rendered["cel_pgsql.conf"])


@pytest.mark.parametrize(
    "field", [{"password": "two words"}, {"password": "it's"}, {"user": "a;b"}, {"dbname": ""}]
)
def test_cel_values_cel_pgsql_cannot_pass_are_refused(field: dict[str, str]) -> None:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 5432, "dbname": "d", "user": "u"}
    with pytest.raises(SandboxError):
        CelDatabase(**{**values, **field})


def test_dead_legs_are_hung_up_by_asterisk(rendered: dict[str, str]) -> None:
    template = section(rendered["pjsip.conf"], "ivr-endpoint")
    assert template["rtp_timeout"] == ["30"] and template["rtp_timeout_hold"] == ["300"]
    # The sandbox's endpoint for the RTP-timeout test overrides it (the last value wins).
    assert section(rendered["pjsip.conf"], "phone-network-rtp-timeout")["rtp_timeout"] == ["5"]
