"""A real Asterisk 22 for development and tests, running in a Debian sid chroot.

    Sandbox.build()  debootstrap + apt inside the chroot, cached (chroot.py)
    Sandbox.up()     render configs (render.py), install prompts (sounds.py), start
                     Asterisk and wait until ARI answers (process.py)
    Sandbox.down()   stop Asterisk by its PID, unmount /proc

Everything listens on 127.0.0.1 only, on non-standard ports, with secrets generated at the
first ``up`` and kept in a 0600 file under the cache directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ivr_devkit.errors import SandboxError
from ivr_devkit.sandbox import chroot, process, render, sounds
from ivr_devkit.sandbox.render import CelDatabase

__all__ = ["CelDatabase", "Sandbox", "SandboxInfo"]

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class SandboxInfo:
    root: Path
    ari_url: str
    ari_user: str
    ari_password: str
    ari_app: str
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    sip_port: int
    operators: dict[str, str] = field(default_factory=dict)
    cel: CelDatabase | None = None  # where Asterisk logs channel events, if anywhere
    bench_ami_user: str = render.BENCH_AMI_USER  # `make bench` only (conf/manager.conf)
    bench_ami_secret: str = ""

    def engine_env(self) -> dict[str, str]:
        """The IVR_* variables that point an engine at this sandbox."""
        routes = {"*": f"PJSIP/phone-network/sip:{{number}}@127.0.0.1:{render.PHONE_PORT}"}
        return {
            "IVR_ARI_URL": self.ari_url,
            "IVR_ARI_USER": self.ari_user,
            "IVR_ARI_PASSWORD": self.ari_password,
            "IVR_ARI_APP": self.ari_app,
            "IVR_AMI_HOST": self.ami_host,
            "IVR_AMI_PORT": str(self.ami_port),
            "IVR_AMI_USER": self.ami_user,
            "IVR_AMI_SECRET": self.ami_secret,
            "IVR_DIAL_ROUTES": json.dumps(routes),
        }


def default_cache_dir() -> Path:
    override = os.environ.get("IVR_SANDBOX_CACHE", "").strip()
    return Path(override) if override else Path.home() / ".cache" / "ivr-engine"


class Sandbox:
    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = (cache_dir or default_cache_dir()).expanduser().absolute()
        self.root = self.cache_dir / "asterisk-sid"
        self.pid_file = self.cache_dir / "asterisk.pid"
        self.out_file = self.cache_dir / "asterisk.out"
        self.secrets_file = self.cache_dir / "sandbox-secrets.json"
        self.env_file = self.cache_dir / "sandbox.env"
        self.ports = render.Ports.from_env()

    # --- lifecycle ------------------------------------------------------------------------

    def build(self) -> None:
        """Create (or finish, or just check) the chroot with Asterisk installed."""
        with self._locked():
            self._build()

    def _build(self) -> None:
        if process.read_pid(self.pid_file) is not None and not chroot.is_built(self.root):
            raise SandboxError("the sandbox is running: `down` it before rebuilding")
        chroot.build(self.root)

    def up(self, sounds_dir: Path | None = None, *, cel: CelDatabase | None = None) -> SandboxInfo:
        """Start Asterisk with freshly rendered configs (a running one is kept if unchanged).

        With ``cel``, Asterisk writes Channel Event Logging rows into that database (its
        table ``cel`` must exist already); without, cel_pgsql is not loaded.
        """
        with self._locked():
            return self._up(sounds_dir, cel)

    def _up(self, sounds_dir: Path | None, cel: CelDatabase | None) -> SandboxInfo:
        if not chroot.is_built(self.root):
            raise SandboxError(f"no sandbox at {self.root}: run `ivr-engine sandbox build` first")
        source = sounds_dir if sounds_dir is not None else render.REPO_ROOT / "build" / "sounds"
        if sounds_dir is not None and not sounds_dir.is_dir():
            raise SandboxError(f"sounds directory {sounds_dir} does not exist")
        creds = render.load_or_create_secrets(self.secrets_file)
        info = self._info(creds, cel)
        changed = self._prepare(creds, source, cel)
        pid = process.read_pid(self.pid_file)
        if pid is not None and not changed:
            self._wait_ready(pid, info)
            return info
        if pid is not None:
            # New configs (edited templates, other ports): a reload would not move the SIP
            # transport or apply modules.conf, so restart to get exactly what was rendered.
            process.stop(self.root, pid)
        process.check_ports_free([self.ports.http, self.ports.ami], [self.ports.sip])
        chroot.mount_proc(self.root)
        pid = process.start(self.root, self.pid_file, self.out_file)
        try:
            self._wait_ready(pid, info)
        except BaseException:
            self._down()
            raise
        return info

    def down(self) -> None:
        """Stop Asterisk and unmount; nothing to do if it is not running."""
        with self._locked():
            self._down()

    def _down(self) -> None:
        pid = process.read_pid(self.pid_file)
        if pid is not None:
            process.stop(self.root, pid)
        self.pid_file.unlink(missing_ok=True)
        if self.root.exists():
            chroot.unmount_all(self.root)

    def status(self) -> dict[str, object]:
        pid = process.read_pid(self.pid_file)
        return {
            "built": chroot.is_built(self.root),
            "running": pid is not None,
            "pid": pid,
            "root": str(self.root),
            "ari_url": self._ari_url(),
            "ports": {
                "http": self.ports.http,
                "ami": self.ports.ami,
                "sip": self.ports.sip,
                "rtp": f"{self.ports.rtp_start}-{self.ports.rtp_end}",
            },
            "operators": list(render.OPERATORS),
            "secrets_file": str(self.secrets_file),
            "env_file": str(self.env_file),
        }

    def cli(self, command: str) -> str:
        """Run one Asterisk CLI command in the running sandbox; its output."""
        return chroot.run_in(
            self.root, ["asterisk", "-rx", command], timeout=30, what=f"asterisk -rx {command!r}"
        )

    # --- helpers --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One build/up/down at a time per cache dir (parallel test runs, two terminals)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / "sandbox.lock", "w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _ari_url(self) -> str:
        return f"http://{render.LOOPBACK}:{self.ports.http}/ari"

    def _info(self, creds: render.Secrets, cel: CelDatabase | None = None) -> SandboxInfo:
        return SandboxInfo(
            root=self.root,
            ari_url=self._ari_url(),
            ari_user=render.ARI_USER,
            ari_password=creds.ari_password,
            ari_app=render.ARI_APP,
            ami_host=render.LOOPBACK,
            ami_port=self.ports.ami,
            ami_user=render.AMI_USER,
            ami_secret=creds.ami_secret,
            sip_port=self.ports.sip,
            operators=dict(creds.operators),
            cel=cel,
            bench_ami_secret=creds.bench_ami_secret,
        )

    def _prepare(self, creds: render.Secrets, sounds_dir: Path, cel: CelDatabase | None) -> bool:
        """Bring the root's files up to date; True if Asterisk's configs changed."""
        chroot.write_host_files(self.root)
        (self.root / "run" / "asterisk").mkdir(parents=True, exist_ok=True)
        sounds.link_languages(self.root)
        sounds.install_prompts(self.root, sounds_dir)
        changed = render.write_configs(
            self.root / "etc" / "asterisk", render.render_configs(self.ports, creds, cel=cel)
        )
        env = self._info(creds).engine_env()
        render.write_private(self.env_file, "".join(f"{k}='{v}'\n" for k, v in sorted(env.items())))
        return changed

    def _wait_ready(self, pid: int, info: SandboxInfo) -> None:
        try:
            process.wait_ready(
                self.root, pid, info.ari_url, info.ari_user, info.ari_password, START_TIMEOUT
            )
        except SandboxError as err:
            tail = process.log_tail(self.root, self.out_file)
            raise SandboxError(f"{err}\n{tail}") from err
