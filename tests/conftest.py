"""Shared fixtures: a throwaway PostgreSQL cluster for the whole session, a fresh database
per test, and (for end-to-end tests) the Asterisk sandbox."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import uvloop
from hypothesis import settings

from ivr_devkit.pgcluster import ThrowawayCluster
from ivr_engine.config import Settings
from ivr_engine.store import connect_pool, migrate

# CI runs must not fail by chance: there, property tests replay a fixed set of examples.
# Elsewhere each run explores new ones (and `.hypothesis/` remembers any failure found).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[ThrowawayCluster]:
    cluster = ThrowawayCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def dsn(pg_cluster: ThrowawayCluster) -> AsyncIterator[str]:
    """A new, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_cluster.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = pg_cluster.dsn.rpartition("/")
    yield f"{base}/{name}"


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(dsn)
    await migrate(pool)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def asterisk_away(dsn: str, api_token: str) -> Settings:
    """Settings of an engine whose Asterisk is away (ARI and AMI ports nobody listens on):
    nothing is ever dialled, so requests stay waiting. HTTP on a free port."""
    return Settings(
        database_url=dsn,
        ari_url=f"http://127.0.0.1:{_dead_port()}/ari",
        ari_password="x",
        ami_port=_dead_port(),
        ami_secret="x",
        api_token=api_token,
        link_secret="link-secret",
        http_port=0,
    )


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Every async test runs on the loop `ivr-engine serve` runs on (IVR_EVENT_LOOP's
    default, uvloop), so the engine the tests start in-process is the one deployed."""
    return {"uvloop": uvloop.new_event_loop}
