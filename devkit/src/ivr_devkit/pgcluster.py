"""A throwaway PostgreSQL cluster for tests and the demo: initdb, start on a free loopback port,
stop, remove. Synchronous (subprocess), so a pytest session fixture and the CLI can both use it.

Layout of the cluster's base directory (a temporary one unless given)::

    data/           PGDATA; postgres writes data/postmaster.pid and its unix socket here
    server.log      the server's log, whose tail goes into every start error
    cluster.json    postmaster PID, port, data dir, owner PID, while the cluster runs

While it runs, ``<tmp>/ivr-engine-pg-<uid>/<postmaster pid>.json`` holds the same, so that
:func:`stop_leftovers` (called by every start) can find and stop a cluster whose owner died
without stopping it.
PostgreSQL refuses to run as root: as root, the server programs run as the ``postgres`` system
user (``runuser``), which must be able to reach the base directory.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ivr_devkit.errors import ClusterError

PG_LIB = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # who runs initdb/postgres when we are root (Debian's package user)
ROLE = "ivr"
DATABASE = "ivr"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# One registry per user, private to it: its entries lead to stopping processes and removing dirs.
REGISTRY = Path(tempfile.gettempdir()) / f"ivr-engine-pg-{os.geteuid()}"

# Durability is worthless for a cluster thrown away after the run; speed is not.
SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "100",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
}
# ``statement_stats=True``: what the server ran, for profiling (the bench). Every statement,
# those inside functions and triggers included (``toplevel`` tells them apart), its planning
# time too, and the time spent in each PL/pgSQL function (pg_stat_user_functions). The view needs
# ``CREATE EXTENSION pg_stat_statements`` in the database that reads it.
STATEMENT_STATS: dict[str, str] = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.max": "5000",
    "pg_stat_statements.track_planning": "on",
    "track_functions": "'pl'",
}
_CONF_NAME = "ivr-throwaway.conf"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with its terminating NUL
_PORT_TAKEN = re.compile(r"could not bind|Address already in use|could not create any TCP/IP")


def find_bin_dir() -> Path:
    """``/usr/lib/postgresql/<highest version>/bin`` holding initdb, pg_ctl and postgres."""
    found: list[tuple[int, Path]] = []
    for bin_dir in PG_LIB.glob("*/bin"):
        major = bin_dir.parent.name
        if major.isdigit() and all((bin_dir / t).is_file() for t in ("initdb", "pg_ctl")):
            found.append((int(major), bin_dir))
    if not found:
        raise ClusterError(
            f"no PostgreSQL server binaries under {PG_LIB}/*/bin: install the Debian package "
            "postgresql (`make system-deps`)"
        )
    return max(found)[1]


class ThrowawayCluster:
    def __init__(
        self,
        base_dir: Path | None = None,
        start_timeout: float = START_TIMEOUT,
        *,
        statement_stats: bool = False,
    ) -> None:
        """``statement_stats``: load pg_stat_statements and count PL/pgSQL functions (see
        STATEMENT_STATS), for profiling; off by default, it costs a little per statement."""
        self._base_given = base_dir
        self._statement_stats = statement_stats
        self._start_timeout = start_timeout
        self._base: Path | None = None
        self._made_temp = False
        self._bin: Path | None = None
        self._port: int | None = None
        self._pid: int | None = None

    @property
    def dsn(self) -> str:
        if self._port is None:
            raise ClusterError("the cluster is not started")
        return f"postgresql://{ROLE}@127.0.0.1:{self._port}/{DATABASE}"

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while the cluster runs."""
        return self._pid

    @property
    def data_dir(self) -> Path:
        if self._base is None:
            raise ClusterError("the cluster is not started")
        return self._base / "data"

    def __enter__(self) -> ThrowawayCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start the cluster (initdb the first time) and return its DSN once it accepts logins."""
        if self._pid is not None:
            return self.dsn
        stop_leftovers()
        deadline = time.monotonic() + self._start_timeout
        self._bin = find_bin_dir()
        self._base = self._make_base()
        atexit.register(self.stop)  # before anything runs, so a half-start is cleaned up too
        try:
            if not (self.data_dir / "PG_VERSION").is_file():
                self._initdb(deadline)
            self._write_conf()
            self._start_server(deadline)
            self._create_database(deadline)
        except BaseException:
            self.stop()
            raise
        return self.dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove a temporary base dir. Safe to call twice."""
        base = self._base
        if base is None:
            return
        pid = self._pid or _read_postmaster_pid(base / "data")
        if pid is not None:
            _stop_server(self._bin or find_bin_dir(), base / "data", pid)
        _forget(base, pid)
        if self._made_temp:
            shutil.rmtree(base, ignore_errors=True)
        self._base = self._pid = self._port = None
        atexit.unregister(self.stop)

    def restart(self, *, down_for: float = 0.0) -> None:
        """What a sysadmin's ``pg_ctl restart -m fast`` does (every session is cut), with the
        server away for ``down_for`` seconds, back on the same port. Blocking."""
        if self._base is None or self._port is None or self._bin is None:
            raise ClusterError("the cluster is not started")
        deadline = time.monotonic() + self._start_timeout + down_for
        log = self._base / "server.log"
        stop = [str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
        _run(_as_server(stop), deadline, "pg_ctl stop", cwd=self._base, log=log)
        time.sleep(down_for)
        seconds = max(1, int(deadline - time.monotonic()))
        start = [str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log)]
        start += ["-o", f"-p {self._port}", "-w", "-t", str(seconds), "start"]
        _run(_as_server(start), deadline, "pg_ctl start", cwd=self._base, log=log)
        self._pid = _read_postmaster_pid(self.data_dir)
        if self._pid is None:
            raise ClusterError(f"pg_ctl restarted no postmaster\n{_tail(log)}")
        _remember(self._base, self._bin, self._pid, self._port, self._made_temp)

    def _make_base(self) -> Path:
        if self._base_given is None:
            base = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
            self._made_temp = True
        else:
            base = self._base_given.resolve()
            base.mkdir(parents=True, exist_ok=True)
        owner = _server_account()
        if owner is not None:
            try:
                _require_traversable(base, owner)
            except ClusterError:
                if self._made_temp:
                    shutil.rmtree(base, ignore_errors=True)
                raise
            for path in (base, *base.rglob("*")):
                os.lchown(path, owner.pw_uid, owner.pw_gid)
        return base

    def _initdb(self, deadline: float) -> None:
        assert self._bin is not None
        argv = [str(self._bin / "initdb"), "-D", str(self.data_dir), "-U", ROLE]
        argv += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        _run(_as_server(argv), deadline, "initdb", cwd=self.data_dir.parent)

    def _write_conf(self) -> None:
        data = self.data_dir
        if len(f"{data}/.s.PGSQL.65535.lock") > _SOCKET_PATH_MAX:
            raise ClusterError(f"{data} is too long a path for the server's unix socket")
        socket_dir = str(data).replace("'", "''")
        settings = {**SETTINGS, **(STATEMENT_STATS if self._statement_stats else {})}
        lines = [f"{key} = {value}" for key, value in settings.items()]
        lines.append(f"unix_socket_directories = '{socket_dir}'")
        (data / _CONF_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
        main_conf = data / "postgresql.conf"
        include = f"include = '{_CONF_NAME}'"
        text = main_conf.read_text(encoding="utf-8")
        if include not in text:
            main_conf.write_text(text + f"\n{include}\n", encoding="utf-8")
        owner = _server_account()
        if owner is not None:
            for path in (data / _CONF_NAME, main_conf):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _start_server(self, deadline: float) -> None:
        assert self._bin is not None and self._base is not None
        log = self._base / "server.log"
        for _ in range(3):  # another program may take the port between our probe and the bind
            port = _free_port()
            seconds = max(1, int(deadline - time.monotonic()))
            argv = [str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log)]
            argv += ["-o", f"-p {port}", "-w", "-t", str(seconds), "start"]
            try:
                _run(_as_server(argv), deadline, "pg_ctl start", cwd=self._base, log=log)
            except ClusterError as err:
                if _PORT_TAKEN.search(_tail(log)) and _read_postmaster_pid(self.data_dir) is None:
                    continue
                raise err
            self._port = port
            self._pid = _read_postmaster_pid(self.data_dir)
            if self._pid is None:
                raise ClusterError(f"pg_ctl started no postmaster\n{_tail(log)}")
            _remember(self._base, self._bin, self._pid, port, self._made_temp)
            return
        raise ClusterError(f"no free loopback port could be bound\n{_tail(log)}")

    def _create_database(self, deadline: float) -> None:
        assert self._bin is not None and self._base is not None
        argv = [str(self._bin / "createdb"), "-h", "127.0.0.1", "-p", str(self._port)]
        argv += ["-U", ROLE, DATABASE]
        try:
            _run(argv, deadline, "createdb", cwd=self._base)
        except ClusterError as err:
            if "already exists" not in str(err):  # a reused base dir keeps its database
                raise


def stop_leftovers() -> list[int]:
    """Stop clusters whose owning process died without stopping them; their postmaster PIDs."""
    stopped: list[int] = []
    try:
        if not _is_private(REGISTRY):
            return stopped
    except OSError:
        return stopped
    for entry in sorted(REGISTRY.glob("*.json")):
        try:
            info = json.loads(entry.read_text(encoding="utf-8"))
            owner, pid, base = int(info["owner_pid"]), int(info["pid"]), Path(info["base_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            entry.unlink(missing_ok=True)
            continue
        if _alive(owner):
            continue
        if _is_postmaster_of(pid, base / "data"):
            _stop_server(Path(info["bin_dir"]), base / "data", pid)
            stopped.append(pid)
        _forget(base, pid)
        if info.get("temporary") is True and _is_our_temp_dir(base):
            shutil.rmtree(base, ignore_errors=True)
    return stopped


def _is_our_temp_dir(base: Path) -> bool:
    return base.parent == Path(tempfile.gettempdir()) and base.name.startswith("ivr-pg-")


def _stop_server(bin_dir: Path, data: Path, pid: int) -> None:
    if not _is_postmaster_of(pid, data):
        return  # gone already, or a stale PID now used by another program
    deadline = time.monotonic() + STOP_TIMEOUT
    for mode in ("fast", "immediate"):
        if not _alive(pid):
            return
        argv = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "20", "stop"]
        with contextlib.suppress(ClusterError):
            _run(_as_server(argv), deadline, "pg_ctl stop", cwd=data.parent)
    if _alive(pid) and _is_postmaster_of(pid, data):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        if time.monotonic() > deadline:
            raise ClusterError(f"postmaster {pid} of {data} is still running")
        time.sleep(0.05)


def _remember(base: Path, bin_dir: Path, pid: int, port: int, temporary: bool) -> None:
    info = {
        "pid": pid,
        "port": port,
        "owner_pid": os.getpid(),
        "base_dir": str(base),
        "temporary": temporary,
        "bin_dir": str(bin_dir),
    }
    text = json.dumps(info, indent=1) + "\n"
    (base / "cluster.json").write_text(text, encoding="utf-8")
    with contextlib.suppress(OSError):  # the registry is a convenience, never a reason to fail
        REGISTRY.mkdir(mode=0o700, exist_ok=True)
        if _is_private(REGISTRY):
            (REGISTRY / f"{pid}.json").write_text(text, encoding="utf-8")


def _is_private(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _forget(base: Path, pid: int | None) -> None:
    (base / "cluster.json").unlink(missing_ok=True)
    if pid is not None:
        with contextlib.suppress(OSError):
            (REGISTRY / f"{pid}.json").unlink(missing_ok=True)


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server programs as, or None to run them as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError as err:
        raise ClusterError(
            f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as: "
            "install the Debian package postgresql, which creates it"
        ) from err


def _as_server(argv: list[str]) -> list[str]:
    if _server_account() is None:
        return argv
    return ["runuser", "-u", SERVER_USER, "--", *argv]


def _require_traversable(base: Path, owner: pwd.struct_passwd) -> None:
    for parent in base.parents:
        st = parent.stat()
        if st.st_uid == owner.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == owner.pw_gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise ClusterError(
                f"user {owner.pw_name!r} cannot reach {base}: {parent} is not searchable by it; "
                "put the cluster under /tmp or /var/tmp"
            )


def _run(argv: list[str], deadline: float, what: str, cwd: Path, log: Path | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    timeout = max(0.1, deadline - time.monotonic())
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise ClusterError(f"{what} took more than {timeout:.0f} s{_log_tail(log)}") from err
    except OSError as err:
        raise ClusterError(f"cannot run {what}: {err}") from err
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        raise ClusterError(f"{what} exited with {proc.returncode}: {output}{_log_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _log_tail(log: Path | None) -> str:
    if log is None:
        return ""
    return f"\n--- {log} (last lines) ---\n{_tail(log)}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _read_postmaster_pid(data: Path) -> int | None:
    try:
        first = (data / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
        return int(first)
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True if ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X")


def _is_postmaster_of(pid: int, data: Path) -> bool:
    # Guards against a PID reused by an unrelated process.
    if not _alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(data).encode() in argv and Path(argv[0].decode(errors="replace")).name in (
        "postgres",
        "postmaster",
    )
