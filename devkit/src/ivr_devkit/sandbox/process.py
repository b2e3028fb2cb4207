"""Starting, watching and stopping the chrooted Asterisk, always by its own PID."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from ivr_devkit.errors import SandboxError
from ivr_devkit.sandbox.chroot import chroot_argv, pid_alive, run_in

# Popen objects of the Asterisks this process started: kept so that they are reaped (no
# zombie that still looks alive) and never garbage-collected while running.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

MESSAGES_LOG = "var/log/asterisk/messages.log"


def read_pid(pid_file: Path) -> int | None:
    """The PID in ``pid_file`` if that process is alive and is an Asterisk; else None."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid) or not _is_asterisk(pid):
        return None
    return pid


def _is_asterisk(pid: int) -> bool:
    # Guards against a PID reused by an unrelated process after a crash or reboot.
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return Path(argv0.decode(errors="replace")).name == "asterisk"


def check_ports_free(tcp: list[int], udp: list[int]) -> None:
    """Fail early, and clearly, if another program already holds one of our ports.

    Asterisk itself would only log the failed bind and keep running without ARI or SIP.
    """
    busy: list[str] = []
    for kind, ports in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
        for port in ports:
            with socket.socket(socket.AF_INET, kind) as sock:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    busy.append(f"{'tcp' if kind == socket.SOCK_STREAM else 'udp'}/{port}")
    if busy:
        raise SandboxError(
            f"port(s) {', '.join(busy)} on 127.0.0.1 are in use by another program; "
            "stop it or choose other ports (IVR_SANDBOX_HTTP_PORT, IVR_SANDBOX_AMI_PORT, "
            "IVR_SANDBOX_SIP_PORT)"
        )


def start(root: Path, pid_file: Path, out_file: Path) -> int:
    """Start Asterisk in the foreground (-f) in a session of its own; record its PID."""
    log = root / MESSAGES_LOG
    if log.exists():
        log.replace(log.with_name("messages.log.prev"))  # the tail shown on failure is ours
    with open(out_file, "wb") as out:
        try:
            proc = subprocess.Popen(
                chroot_argv(root, ["asterisk", "-f", "-n"]),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as err:
            raise SandboxError(f"cannot start Asterisk: {err}") from err
    _CHILDREN[proc.pid] = proc
    pid_file.write_text(f"{proc.pid}\n", encoding="utf-8")
    return proc.pid


def wait_ready(
    root: Path, pid: int, ari_url: str, user: str, password: str, timeout: float
) -> None:
    """Wait until the CLI says fully booted and ARI answers with our credentials."""
    deadline = time.monotonic() + timeout
    _wait_booted(root, pid, deadline)
    _wait_ari(pid, ari_url, user, password, deadline)


def _wait_booted(root: Path, pid: int, deadline: float) -> None:
    while True:
        _ensure_alive(pid)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SandboxError("Asterisk did not report fully booted in time")
        # Fails at once while the control socket is not there yet; blocks once it is.
        with contextlib.suppress(SandboxError):
            run_in(
                root,
                ["asterisk", "-rx", "core waitfullybooted"],
                timeout=remaining,
                what="core waitfullybooted",
            )
            return
        time.sleep(0.2)


def _wait_ari(pid: int, ari_url: str, user: str, password: str, deadline: float) -> None:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"{ari_url}/asterisk/info", headers={"Authorization": f"Basic {token}"}
    )
    last = "no answer"
    started = time.monotonic()
    while time.monotonic() < deadline:
        _ensure_alive(pid)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise SandboxError(
                    f"ARI at {ari_url} refused the sandbox credentials (HTTP {err.code}); "
                    "is another Asterisk answering on that port?"
                ) from err
            # Asterisk is fully booted by now, so a lasting 404 means res_ari did not load.
            if err.code == 404 and time.monotonic() - started > 3.0:
                raise SandboxError(f"ARI is not loaded (HTTP 404 at {ari_url})") from err
            last = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(0.2)
    raise SandboxError(f"ARI at {ari_url} did not answer in time ({last})")


def _ensure_alive(pid: int) -> None:
    if not pid_alive(pid):
        raise SandboxError(f"Asterisk (pid {pid}) exited during start-up")


def stop(root: Path, pid: int, timeout: float = 15.0) -> None:
    """Graceful ``core stop now``, then SIGTERM, then SIGKILL — each to this PID only."""
    if pid_alive(pid):
        with contextlib.suppress(SandboxError):
            run_in(root, ["asterisk", "-rx", "core stop now"], timeout=timeout, what="core stop")
    stopped = _wait_gone(pid, timeout)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if stopped:
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        stopped = _wait_gone(pid, 5.0)
    if not stopped:
        raise SandboxError(f"Asterisk (pid {pid}) did not stop even after SIGKILL")
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        proc.wait(timeout=5)


def _wait_gone(pid: int, timeout: float) -> bool:
    proc = _CHILDREN.get(pid)
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def log_tail(root: Path, out_file: Path, lines: int = 40) -> str:
    """The last lines of Asterisk's messages.log and of its console output."""
    parts: list[str] = []
    for title, path in (("messages.log", root / MESSAGES_LOG), ("console", out_file)):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        tail = text.splitlines()[-lines:]
        if tail:
            parts.append(f"--- {title} ({path}) ---\n" + "\n".join(tail))
    return "\n".join(parts) if parts else "(Asterisk wrote no log)"
