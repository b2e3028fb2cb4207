"""The throwaway PostgreSQL cluster: it starts, serves, stops, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ivr_devkit import pgcluster
from ivr_devkit.errors import ClusterError
from ivr_devkit.pgcluster import ThrowawayCluster, stop_leftovers

pytestmark = pytest.mark.integration


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaping is left


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory the postgres user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ivr-pgtest-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_start_serve_stop(capsys: pytest.CaptureFixture[str]) -> None:
    cluster = ThrowawayCluster()
    began = time.monotonic()
    dsn = cluster.start()
    took = time.monotonic() - began
    try:
        with capsys.disabled():
            print(f"\nthrowaway cluster started in {took:.2f} s")
        assert dsn == cluster.dsn
        assert dsn.startswith("postgresql://ivr@127.0.0.1:") and dsn.endswith("/ivr")
        pid, data = cluster.pid, cluster.data_dir
        assert pid is not None and _running(pid)
        port = int(dsn.rsplit(":", 1)[1].split("/")[0])

        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            assert await conn.fetchval("select 1") == 1
            assert await conn.fetchval("select current_user") == "ivr"
            assert await conn.fetchval("show fsync") == "off"
            assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
        finally:
            await conn.close()
    finally:
        cluster.stop()

    assert not _running(pid)
    assert _port_free(port)
    assert not data.exists()
    cluster.stop()  # a second stop is a no-op
    with pytest.raises(ClusterError):
        _ = cluster.dsn


async def test_context_manager_and_reused_base_dir(shared_tmp: Path) -> None:
    base = shared_tmp / "cache"
    with ThrowawayCluster(base) as cluster:
        conn = await asyncpg.connect(cluster.dsn, timeout=10)
        await conn.execute("create table kept (x int); insert into kept values (42)")
        await conn.close()
    assert (base / "data" / "PG_VERSION").is_file()  # a given base dir is kept

    with ThrowawayCluster(base) as cluster:
        conn = await asyncpg.connect(cluster.dsn, timeout=10)
        assert await conn.fetchval("select x from kept") == 42
        await conn.close()


def test_leftover_of_a_dead_owner_is_stopped() -> None:
    cluster = ThrowawayCluster()
    cluster.start()
    try:
        pid = cluster.pid
        assert pid is not None
        base = cluster.data_dir.parent
        entry = pgcluster.REGISTRY / f"{pid}.json"
        info = json.loads(entry.read_text(encoding="utf-8"))
        assert info["base_dir"] == str(base)
        dead = subprocess.Popen(["true"])
        dead.wait()
        info["owner_pid"] = dead.pid  # as if the test run that started it had been killed
        entry.write_text(json.dumps(info), encoding="utf-8")

        assert stop_leftovers() == [pid]
        assert not _running(pid)
        assert not entry.exists()
        assert not base.exists()
    finally:
        cluster.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_unreachable_base_dir_is_a_clear_error(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(ClusterError, match="cannot reach"):
        ThrowawayCluster(private / "pg").start()


async def test_statement_stats_count_what_ran_nested_statements_apart() -> None:
    with ThrowawayCluster(statement_stats=True) as cluster:
        conn = await asyncpg.connect(cluster.dsn)
        try:
            await conn.execute("CREATE EXTENSION pg_stat_statements")
            await conn.execute(
                "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN (SELECT 41 + 1); END $$"
                " LANGUAGE plpgsql"
            )
            await conn.execute("SELECT pg_stat_statements_reset()")
            for _ in range(3):
                assert await conn.fetchval("SELECT f()") == 42
            rows = await conn.fetch(
                "SELECT query, toplevel, calls FROM pg_stat_statements WHERE calls = 3"
            )
        finally:
            await conn.close()
    found = {(r["query"], r["toplevel"]) for r in rows}
    assert ("SELECT f()", True) in found
    assert any(not top and "SELECT" in query for query, top in found)  # inside f()
