"""The sandbox's ports and secrets, and the Asterisk config files rendered from templates.

The templates are the very files a sysadmin adds to their own Asterisk, shipped inside the
engine's package (``ivr_engine.asterisk_conf``, also what ``ivr-engine asterisk-conf render``
fills); they carry ``@@NAME@@`` placeholders. The sandbox fills them with its own values
and appends the sandbox-only parts kept in ``conf/`` beside this module.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ivr_devkit.errors import SandboxError
from ivr_engine import asterisk_conf
from ivr_engine.errors import ConfigError

LOOPBACK = "127.0.0.1"
ARI_USER = "ivr-engine"
ARI_APP = "ivr-engine"
AMI_USER = "ivr-engine"
# The bench's own AMI user (sandbox only: conf/manager.conf), for its pure-dialplan side.
BENCH_AMI_USER = "ivr-bench"
OPERATORS: tuple[str, ...] = ("operator1", "operator2")
# Where the sandbox's default route sends numbers: the port a test phone (SIPp UAS) listens on.
PHONE_PORT = 5070

PLACEHOLDER = asterisk_conf.PLACEHOLDER

# Source checkout layout: devkit/src/ivr_devkit/sandbox/render.py -> the repository root
# (where `make sounds` renders the prompts, build/sounds).
REPO_ROOT = Path(__file__).resolve().parents[4]
# The sandbox-only parts: a stand-in phone network, operators, extra noloads, logging.
SANDBOX_CONF = Path(__file__).resolve().parent / "conf"

# Rendered file in /etc/asterisk -> the templates it is made of, concatenated in order:
# "engine:NAME" is a template of the engine's package, "sandbox:NAME" one of conf/.
LAYOUT: dict[str, tuple[str, ...]] = {
    "http.conf": ("engine:http.conf",),
    "ari.conf": ("engine:ari.conf",),
    "manager.conf": ("engine:manager.conf", "sandbox:manager.conf"),
    "prometheus.conf": ("engine:prometheus.conf",),
    "rtp.conf": ("engine:rtp.conf",),
    "modules.conf": ("engine:modules.conf", "sandbox:modules.conf"),
    "pjsip.conf": ("engine:pjsip.conf", "sandbox:pjsip.conf"),
    "logger.conf": ("sandbox:logger.conf",),
    "cel.conf": ("engine:cel.conf",),
    "cel_pgsql.conf": ("engine:cel_pgsql.conf",),
    "extensions.conf": ("engine:extensions.conf", "sandbox:extensions.conf"),
    "musiconhold.conf": ("sandbox:musiconhold.conf",),
    "amd.conf": ("engine:amd.conf",),
}


@dataclass(frozen=True)
class Ports:
    """Non-standard defaults so the sandbox never collides with a real Asterisk."""

    http: int = 18088
    ami: int = 15038
    sip: int = 15060
    # 5,000 call legs (two ports each): `make bench` runs a few hundred at once, and the
    # sandbox's RTP range must not be what limits it.
    rtp_start: int = 20000
    rtp_end: int = 29999

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Ports:
        env = os.environ if env is None else env
        names = {
            "http": "IVR_SANDBOX_HTTP_PORT",
            "ami": "IVR_SANDBOX_AMI_PORT",
            "sip": "IVR_SANDBOX_SIP_PORT",
            "rtp_start": "IVR_SANDBOX_RTP_START",
            "rtp_end": "IVR_SANDBOX_RTP_END",
        }
        values: dict[str, int] = {}
        for attr, name in names.items():
            raw = env.get(name, "").strip()
            if not raw:
                continue
            if not raw.isdigit() or not 1 <= int(raw) <= 65535:
                raise SandboxError(f"{name}={raw!r} is not a port number")
            values[attr] = int(raw)
        ports = cls(**values)
        if ports.rtp_start >= ports.rtp_end:
            raise SandboxError(f"RTP range {ports.rtp_start}-{ports.rtp_end} is empty")
        return ports


@dataclass(frozen=True)
class CelDatabase:
    """The PostgreSQL database the sandbox's cel_pgsql writes to (its table ``cel`` must
    exist before ``up``: cel_pgsql reads the columns when it loads)."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = ""

    def __post_init__(self) -> None:
        # cel_pgsql pastes these into a libpq connection string unquoted, and ';' starts a
        # comment in cel_pgsql.conf.
        for name in ("host", "dbname", "user", "password"):
            value = getattr(self, name)
            if _UNSAFE_CONNINFO.search(value) or (name != "password" and not value):
                raise SandboxError(f"CEL database {name} {value!r} cannot go into cel_pgsql.conf")
        if not 1 <= self.port <= 65535:
            raise SandboxError(f"CEL database port {self.port} is not a port number")


_UNSAFE_CONNINFO = re.compile(r"[\s'\\;]")

# Without a CEL database the module stays unloaded (it would log an error at every event).
NO_CEL_PGSQL = "; The sandbox was started without a CEL database: cel_pgsql is not loaded.\n"
NO_CEL_MODULES = (
    "\n; No CEL database for this sandbox run (see cel_pgsql.conf).\nnoload => cel_pgsql.so\n"
)


@dataclass(frozen=True)
class Secrets:
    ari_password: str
    ami_secret: str
    operators: dict[str, str] = field(default_factory=dict)
    bench_ami_secret: str = ""


def _new_secret() -> str:
    # URL-safe alphabet: no ';' (a comment in Asterisk configs) and nothing to quote.
    return secrets.token_urlsafe(24)


def load_or_create_secrets(path: Path) -> Secrets:
    """Secrets from ``path`` (mode 0600), generating and storing the missing ones."""
    stored: dict[str, object] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SandboxError(f"cannot read sandbox secrets {path}: {err}") from err
        if isinstance(loaded, dict):
            stored = loaded
    raw_ops = stored.get("operators")
    operators = {str(k): str(v) for k, v in raw_ops.items()} if isinstance(raw_ops, dict) else {}
    result = Secrets(
        ari_password=str(stored.get("ari_password") or _new_secret()),
        ami_secret=str(stored.get("ami_secret") or _new_secret()),
        operators={name: operators.get(name) or _new_secret() for name in OPERATORS},
        bench_ami_secret=str(stored.get("bench_ami_secret") or _new_secret()),
    )
    wanted = {
        "ari_password": result.ari_password,
        "ami_secret": result.ami_secret,
        "operators": result.operators,
        "bench_ami_secret": result.bench_ami_secret,
    }
    if wanted != stored:
        write_private(path, json.dumps(wanted, indent=2) + "\n")
    return result


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def placeholder_values(
    ports: Ports, creds: Secrets, cel: CelDatabase | None = None
) -> dict[str, str]:
    values = {
        "HTTP_PORT": str(ports.http),
        "AMI_PORT": str(ports.ami),
        "SIP_BIND": LOOPBACK,
        "SIP_PORT": str(ports.sip),
        "RTP_START": str(ports.rtp_start),
        "RTP_END": str(ports.rtp_end),
        "ARI_USER": ARI_USER,
        "ARI_PASSWORD": creds.ari_password,
        "ARI_APP": ARI_APP,
        "AMI_USER": AMI_USER,
        "AMI_SECRET": creds.ami_secret,
        "BENCH_AMI_SECRET": creds.bench_ami_secret,
    }
    for name, password in creds.operators.items():
        values[f"{name.upper()}_PASSWORD"] = password
    if cel is not None:
        values.update(
            CEL_DB_HOST=cel.host,
            CEL_DB_PORT=str(cel.port),
            CEL_DB_NAME=cel.dbname,
            CEL_DB_USER=cel.user,
            CEL_DB_PASSWORD=cel.password,
        )
    return values


def render_text(text: str, values: Mapping[str, str], source: str) -> str:
    """Fill every ``@@NAME@@`` as the engine does; a name without a value is an error."""
    try:
        return asterisk_conf.fill(text, values, source)
    except ConfigError as err:
        raise SandboxError(str(err)) from err


def _read(source: str) -> str:
    origin, _, name = source.partition(":")
    try:
        if origin == "engine":
            return asterisk_conf.template(name).read_text(encoding="utf-8")
        return (SANDBOX_CONF / name).read_text(encoding="utf-8")
    except (OSError, ConfigError) as err:
        raise SandboxError(f"missing config template {source}: {err}") from err


def render_configs(
    ports: Ports, creds: Secrets, *, cel: CelDatabase | None = None
) -> dict[str, str]:
    """The sandbox's /etc/asterisk files: name -> content.

    With ``cel``, Asterisk logs channel events into that database; without, cel_pgsql is
    not loaded.
    """
    values = placeholder_values(ports, creds, cel)
    rendered: dict[str, str] = {}
    for name, sources in LAYOUT.items():
        if name == "cel_pgsql.conf" and cel is None:
            rendered[name] = NO_CEL_PGSQL
            continue
        rendered[name] = "".join(render_text(_read(source), values, source) for source in sources)
    if cel is None:
        rendered["modules.conf"] += NO_CEL_MODULES
    return rendered


def write_configs(etc_dir: Path, rendered: Mapping[str, str]) -> bool:
    """Write the files that differ; True if any did (a running Asterisk must reload)."""
    changed = False
    for name, text in rendered.items():
        target = etc_dir / name
        try:
            if target.read_text(encoding="utf-8") == text:
                continue
        except OSError:
            pass
        write_private(target, text)
        changed = True
    return changed
