"""The Debian sid root filesystem that Asterisk 22 lives in, and the mounts it needs.

Asterisk 22 is packaged in Debian sid only and needs sid's libc, so it cannot be installed on
the bookworm host: it gets a root filesystem of its own (debootstrap) and runs chrooted there.
Loopback is shared with the host, so the host reaches ARI/AMI/SIP on 127.0.0.1 as usual.

A build is cached: a marker file inside the root records the package list of the last
completed build. No marker means the build was cut short, and it is redone from scratch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from ivr_devkit.errors import SandboxError

log = structlog.get_logger(__name__)

SUITE = "sid"

# asterisk-config gives the sample configs we overwrite with ours (and the directory layout);
# sip-tester gives a SIPp new enough (>= 3.7.3) for concurrent pcap play, for load tests.
PACKAGES: tuple[str, ...] = (
    "asterisk",
    "asterisk-modules",
    "asterisk-config",
    "asterisk-core-sounds-en-gsm",
    "asterisk-core-sounds-it-gsm",
    "asterisk-moh-opsound-gsm",
    "sip-tester",
)

MARKER = ".ivr-engine-build.json"

_OCTAL = re.compile(r"\\([0-7]{3})")

# Environment for commands run inside the root: the host's may point at paths it lacks.
_CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "HOME": "/root",
}

# Debian maintainer scripts start services through invoke-rc.d; exit status 101 tells them
# not to. Without it, installing asterisk would start a second, unmanaged Asterisk.
_POLICY_RC_D = "#!/bin/sh\n# ivr-engine sandbox: never start services while installing\nexit 101\n"


def run(argv: Sequence[str], *, timeout: float, what: str) -> str:
    """Run a host command; output on success, SandboxError with its output tail on failure."""
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as err:
        raise SandboxError(f"{what}: {argv[0]} is not installed ({err})") from err
    except subprocess.TimeoutExpired as err:
        raise SandboxError(f"{what}: no result after {timeout:.0f} s") from err
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise SandboxError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def run_in(root: Path, argv: Sequence[str], *, timeout: float, what: str) -> str:
    """Run a command inside ``root``; like :func:`run`."""
    return run(chroot_argv(root, argv), timeout=timeout, what=what)


def chroot_argv(root: Path, argv: Sequence[str]) -> list[str]:
    """The host command line that runs ``argv`` inside ``root`` with a clean environment."""
    env = [f"{k}={v}" for k, v in _CHROOT_ENV.items()]
    return ["env", "-i", *env, "chroot", str(root), *argv]


# --- mounts -------------------------------------------------------------------------------


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root``, deepest first (the order to unmount them in)."""
    prefix = str(root.resolve())
    found: list[Path] = []
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 2:
                continue
            # The kernel writes space, tab, newline and backslash as octal escapes (\040).
            point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def mount_proc(root: Path) -> None:
    target = root / "proc"
    if target.resolve() in mounts_under(target):
        return
    target.mkdir(exist_ok=True)
    run(["mount", "-t", "proc", "proc", str(target)], timeout=30, what="mount proc")


def unmount_all(root: Path) -> None:
    """Unmount everything below ``root``; a busy mount is detached lazily rather than kept."""
    for point in mounts_under(root):
        try:
            run(["umount", str(point)], timeout=30, what=f"umount {point}")
        except SandboxError:
            run(["umount", "-l", str(point)], timeout=30, what=f"umount -l {point}")


# --- host facts copied in -----------------------------------------------------------------


def apt_snippets(conf_dir: Path = Path("/etc/apt/apt.conf.d")) -> list[Path]:
    """The host's apt.conf.d files that relax the Valid-Until/Date checks, if any.

    Some mirrors serve dated snapshots whose Release files have expired; the host is set up
    for that, and the chroot must be set up the same way, whatever the host's snippet is.
    """
    found: list[Path] = []
    if not conf_dir.is_dir():
        return found
    for path in sorted(conf_dir.iterdir()):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "Check-Valid-Until" in text or "Check-Date" in text:
            found.append(path)
    return found


def write_host_files(root: Path) -> None:
    """DNS and host name: there is no DNS here, and Asterisk blocks on unresolved lookups."""
    etc = root / "etc"
    resolv = Path("/etc/resolv.conf")
    target = etc / "resolv.conf"
    if target.is_symlink():
        target.unlink()
    if resolv.exists():
        shutil.copyfile(resolv, target)
    hostname = socket.gethostname()
    (etc / "hosts").write_text(
        f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        encoding="utf-8",
    )


# --- the build ----------------------------------------------------------------------------


def read_marker(root: Path) -> dict[str, object] | None:
    try:
        data = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_built(root: Path) -> bool:
    marker = read_marker(root)
    return marker is not None and marker.get("packages") == list(PACKAGES)


def build(root: Path) -> None:
    """Make ``root`` a sid system with Asterisk installed. Cached and safe to call again."""
    marker = read_marker(root)
    if marker is not None and marker.get("packages") == list(PACKAGES):
        write_host_files(root)
        return
    if marker is None and root.exists():
        _discard(root)  # an earlier build was cut short: its state is unknown
    started = time.monotonic()
    if marker is None:
        root.parent.mkdir(parents=True, exist_ok=True)
        log.info("sandbox.debootstrap", suite=SUITE, root=str(root))
        run(
            ["debootstrap", "--variant=minbase", SUITE, str(root)],
            timeout=1200,
            what="debootstrap",
        )
    _install(root)
    seconds = round(time.monotonic() - started)
    (root / MARKER).write_text(
        json.dumps({"packages": list(PACKAGES), "seconds": seconds}), encoding="utf-8"
    )
    log.info("sandbox.built", root=str(root), seconds=seconds)


def _install(root: Path) -> None:
    write_host_files(root)
    apt_dir = root / "etc/apt/apt.conf.d"
    apt_dir.mkdir(parents=True, exist_ok=True)
    for snippet in apt_snippets():
        shutil.copyfile(snippet, apt_dir / snippet.name)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text(_POLICY_RC_D, encoding="utf-8")
    policy.chmod(0o755)
    mount_proc(root)
    log.info("sandbox.apt_install", packages=list(PACKAGES))
    try:
        run_in(root, ["apt-get", "update"], timeout=600, what="apt-get update in the chroot")
        run_in(
            root,
            ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
            timeout=1800,
            what="apt-get install in the chroot",
        )
        run_in(root, ["apt-get", "clean"], timeout=120, what="apt-get clean in the chroot")
    finally:
        unmount_all(root)


def _discard(root: Path) -> None:
    unmount_all(root)
    if mounts_under(root):
        raise SandboxError(f"{root} still has mounts; not deleting it")
    # Never follow a symlink out of the root while deleting it.
    shutil.rmtree(root)
    if root.exists():
        raise SandboxError(f"could not delete the half-built {root}")


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
