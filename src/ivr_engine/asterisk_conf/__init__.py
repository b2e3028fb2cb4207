"""The Asterisk configuration the engine needs, as templates shipped inside the package, and
``ivr-engine asterisk-conf render``, which fills them from the engine's own settings.

The templates (``*.conf`` beside this module) carry ``@@NAME@@`` placeholders (not ``${...}``,
which is dialplan syntax). Filling never leaves one in place: a placeholder without a value
is an error, because Asterisk would otherwise take ``@@AMI_SECRET@@`` as the literal secret.
The development kit's sandbox renders the same templates with its own ports and secrets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from urllib.parse import urlsplit

from ivr_engine.config import Settings
from ivr_engine.errors import ConfigError

PLACEHOLDER = re.compile(r"@@([A-Z][A-Z0-9_]*)@@")

# The snippets, in the order a sysadmin reads them (README.md beside them explains each).
TEMPLATES: tuple[str, ...] = (
    "http.conf",
    "ari.conf",
    "manager.conf",
    "prometheus.conf",
    "pjsip.conf",
    "rtp.conf",
    "modules.conf",
    "cel.conf",
    "cel_pgsql.conf",
    "extensions.conf",
    "amd.conf",
)
# A value Asterisk would cut or misread: ';' starts a comment, a line break ends the option.
_UNSAFE = re.compile(r"[;\r\n]|^\s|\s$")
_CONNINFO_UNSAFE = re.compile(r"[\s'\\]")


def template(name: str) -> Traversable:
    """One shipped template, wherever the package is installed (wheel, checkout, image)."""
    if name not in TEMPLATES:
        raise ConfigError(f"no Asterisk template named {name!r}")
    return files(__package__) / name


def fill(text: str, values: Mapping[str, str], source: str) -> str:
    """Fill every ``@@NAME@@``; a name without a value, or a value Asterisk would misread, is
    an error, never left in place."""
    names = {m.group(1) for m in PLACEHOLDER.finditer(text)}
    missing = sorted(names - values.keys())
    if missing:
        raise ConfigError(f"{source}: no value for placeholder(s) {', '.join(missing)}")
    for name in sorted(names):
        value = values[name]
        if not value or _UNSAFE.search(value):
            raise ConfigError(
                f"{source}: the value for {name} is empty, or has a ';', a line break or "
                "surrounding spaces, which Asterisk would misread"
            )
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


@dataclass(frozen=True)
class SipSide:
    """What the engine's settings do not say: where Asterisk meets the phone network, and
    the role Asterisk writes its channel events with (default: the CEL DSN's own)."""

    bind: str = "0.0.0.0"
    port: int = 5060
    rtp_start: int = 10000
    rtp_end: int = 20000
    cel_user: str = ""
    cel_password: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"SIP port {self.port} is not a port number")
        if not 1024 <= self.rtp_start < self.rtp_end <= 65535:
            raise ConfigError(f"RTP range {self.rtp_start}-{self.rtp_end} is not usable")


def values_from_settings(settings: Settings, sip: SipSide) -> dict[str, str]:
    """Every placeholder's value, from the engine's settings (and the SIP side)."""
    ari = urlsplit(settings.ari_url)
    try:
        http_port = ari.port or (443 if ari.scheme == "https" else 80)
    except ValueError as err:
        raise ConfigError(f"IVR_ARI_URL {settings.ari_url!r}: {err}") from err
    return {
        "HTTP_PORT": str(http_port),
        "ARI_USER": settings.ari_user,
        "ARI_PASSWORD": settings.ari_password.get_secret_value(),
        "ARI_APP": settings.ari_app,
        "AMI_PORT": str(settings.ami_port),
        "AMI_USER": settings.ami_user,
        "AMI_SECRET": settings.ami_secret.get_secret_value(),
        "SIP_BIND": sip.bind,
        "SIP_PORT": str(sip.port),
        "RTP_START": str(sip.rtp_start),
        "RTP_END": str(sip.rtp_end),
        **_cel_values(settings.cel_dsn, sip),
    }


def _cel_values(dsn: str, sip: SipSide) -> dict[str, str]:
    """Where cel_pgsql writes: the engine's CEL database (IVR_CEL_DATABASE_URL, else its own)."""
    url = urlsplit(dsn)
    try:
        port = url.port or 5432
    except ValueError as err:
        raise ConfigError(f"the CEL database URL: {err}") from err
    values = {
        "CEL_DB_HOST": url.hostname or "127.0.0.1",
        "CEL_DB_PORT": str(port),
        "CEL_DB_NAME": url.path.lstrip("/") or "postgres",
        "CEL_DB_USER": sip.cel_user or url.username or "",
        "CEL_DB_PASSWORD": sip.cel_password or url.password or "",
    }
    for name, value in values.items():
        if _CONNINFO_UNSAFE.search(value):  # cel_pgsql puts them in a conninfo unquoted
            raise ConfigError(
                f"{name} has a space, a quote or a backslash: cel_pgsql cannot use it"
            )
    return values


def render(values: Mapping[str, str]) -> dict[str, str]:
    """Every snippet, filled: file name -> text."""
    return {
        name: fill(template(name).read_text(encoding="utf-8"), values, name) for name in TEMPLATES
    }


def write(out: Path, rendered: Mapping[str, str]) -> list[Path]:
    """Write the snippets into ``out``, readable by their owner only (they hold secrets)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered.items():
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        written.append(path)
    return written


def render_cli(settings: Settings, out: Path, sip: SipSide) -> list[str]:
    """``ivr-engine asterisk-conf render --out DIR``: the lines to print."""
    paths = write(out, render(values_from_settings(settings, sip)))
    lines = [f"wrote {path}" for path in paths]
    host = urlsplit(settings.ari_url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(
            f"note: IVR_ARI_URL points at {host}; http.conf binds ARI to 127.0.0.1: change "
            "bindaddr to an address the engine reaches, behind a firewall"
        )
    lines.append("merge them into /etc/asterisk/ (README.md there says how), then restart Asterisk")
    return lines
