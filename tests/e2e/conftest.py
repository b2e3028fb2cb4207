"""End-to-end fixtures: the sandbox Asterisk (started once per session) logging channel
events into the session's CEL database, an engine per test wired to a fresh database, and
simulated SIP phones."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from ivr_devkit.faults.engines import EngineProcess
from ivr_devkit.pgcluster import ThrowawayCluster
from ivr_devkit.sandbox import CelDatabase, Sandbox, SandboxInfo
from ivr_devkit.simphones import PhoneBook
from ivr_engine.ari.models import parse_ari_time
from ivr_engine.config import settings_from_env
from ivr_engine.engine import Engine
from ivr_engine.store import connect_pool, migrate
from ivr_engine.transcript import transcript

API_TOKEN = "e2e-token"
T = TypeVar("T")


async def until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 10,
    interval: float = 0.1,
) -> T:
    """``probe()`` again and again until ``done`` accepts its value, which is returned; an
    AssertionError with the last value after ``timeout`` seconds. For what the engine (or
    Asterisk) writes a little after the event a test waited for: a phone sees its BYE, or a
    request reaches its final state, a few milliseconds before the rows that follow it are
    written (an attempt's outcome, an offer's end, a sent email, a CEL row, a bridge gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        assert loop.time() < deadline, f"still {value!r} after {timeout} s"
        await asyncio.sleep(interval)


# Asterisk's Channel Event Logging goes to a database of the session's cluster, shared by
# every test (channel ids repeat across tests: look-ups filter by time). Asterisk logs in
# with a role that may only insert, as a production one should.
CEL_DATABASE = "asterisk_cel"
CEL_ROLE = "asterisk"
CEL_PASSWORD = "cel-e2e-secret"
# Not UTC on purpose: every session in that database (Asterisk's too) gets this zone, and
# the CEL times must not depend on it (migrations/0009_cel.sql).
CEL_SESSION_ZONE = "Pacific/Auckland"


@pytest.fixture(scope="session")
async def cel_dsn(pg_cluster: ThrowawayCluster) -> str:
    """The CEL database, migrated, as the engine's role sees it (IVR_CEL_DATABASE_URL)."""
    admin = await asyncpg.connect(pg_cluster.dsn)
    try:
        await admin.execute(f"CREATE DATABASE {CEL_DATABASE}")
        await admin.execute(f"ALTER DATABASE {CEL_DATABASE} SET TimeZone = '{CEL_SESSION_ZONE}'")
        await admin.execute(f"CREATE ROLE {CEL_ROLE} LOGIN PASSWORD '{CEL_PASSWORD}'")
    finally:
        await admin.close()
    dsn = f"{pg_cluster.dsn.rpartition('/')[0]}/{CEL_DATABASE}"
    pool = await connect_pool(dsn)
    try:
        await migrate(pool)
        await pool.execute(
            f"GRANT INSERT ON cel TO {CEL_ROLE}; GRANT USAGE ON SEQUENCE cel_id_seq TO {CEL_ROLE}"
        )
    finally:
        await pool.close()
    return dsn


@pytest.fixture
async def cel_pool(cel_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """The engine's view of the CEL database (what store/cel.py is given)."""
    pool = await connect_pool(cel_dsn)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def sandbox(cel_dsn: str) -> Iterator[SandboxInfo]:
    port = urlsplit(cel_dsn).port
    assert port is not None
    cel = CelDatabase(
        host="127.0.0.1", port=port, dbname=CEL_DATABASE, user=CEL_ROLE, password=CEL_PASSWORD
    )
    box = Sandbox()
    # One test run at a time owns the sandbox (its ports and its phones' ports are fixed):
    # a second run on the same machine waits here instead of stopping Asterisk under the first.
    box.cache_dir.mkdir(parents=True, exist_ok=True)
    with open(box.cache_dir / "e2e-session.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = box.up(cel=cel)
        try:
            yield info
        finally:
            box.down()


@pytest.fixture
async def phones(tmp_path: Path) -> AsyncIterator[PhoneBook]:
    book = PhoneBook(tmp_path / "phones")
    try:
        yield book
    finally:
        await book.aclose()


async def cel_logged(pool: asyncpg.Pool, channel_id: str, since: datetime) -> None:
    """Wait until Asterisk's CEL has the channel's last row (CHAN_END): cel_pgsql writes from
    a thread of its own, so its rows may land after ARI has reported the channel destroyed,
    and after the engine has written what followed."""
    await until(
        lambda: pool.fetchval(
            "SELECT count(*) FROM cel WHERE uniqueid = $1 AND event_at >= $2"
            " AND eventtype = 'CHAN_END'",
            channel_id,
            since,
        ),
        lambda count: count > 0,
    )


class Harness:
    """One engine on the sandbox, plus helpers to talk to it and to Asterisk."""

    def __init__(self, engine: Engine, info: SandboxInfo, http: aiohttp.ClientSession) -> None:
        self.engine = engine
        self.info = info
        self.http = http
        self.base = f"http://127.0.0.1:{engine.http_port}"

    @property
    def pool(self) -> Any:
        return self.engine.pool

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method,
            self.base + path,
            json=body,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as resp:
            return resp.status, await resp.json()

    async def expert(self, phone: str, *, rate: str = "1.50", ivr: bool = True) -> int:
        status, body = await self.api(
            "POST",
            "/api/v1/experts",
            {
                "alias": "Anna",
                "phone": phone,
                "rate_per_minute": rate,
                "email": "anna@example.org",
                "acceptance_ivr": ivr,
            },
        )
        assert status == 201, body
        return int(body["id"])

    async def request(self, expert_id: int, client_phone: str, alias: str = "Marco") -> int:
        status, body = await self.api(
            "POST",
            f"/api/v1/experts/{expert_id}/requests",
            {"client_phone": client_phone, "client_alias": alias},
        )
        assert status == 201, body
        return int(body["id"])

    async def wait_state(self, request_id: int, *states: str, timeout: float = 40) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = await self.pool.fetchval("SELECT state FROM requests WHERE id = $1", request_id)
            if state in states:
                return str(state)
            if loop.time() > deadline:
                lines = "\n".join(await transcript(self.pool, request_id))
                raise AssertionError(f"request {request_id} is {state}, expected {states}\n{lines}")
            await asyncio.sleep(0.1)

    async def holding_caller(self, timeout: float = 20) -> tuple[str, int]:
        """The channel and the request of the (one) call in that joined a waiting list."""
        row = await until(
            lambda: self.pool.fetchrow(
                "SELECT channel_id, request_id FROM inbound_calls WHERE request_id IS NOT NULL"
            ),
            lambda row: row is not None,
            timeout=timeout,
        )
        return str(row["channel_id"]), int(row["request_id"])

    async def inbound_ended(self, channel_id: str, timeout: float = 10) -> Any:
        """A call in's row once the engine has written its outcome: the phones may see the
        hang-up a few milliseconds before the engine records it."""
        return await until(
            lambda: self.pool.fetchrow(
                "SELECT * FROM inbound_calls WHERE channel_id = $1", channel_id
            ),
            lambda row: row is not None and row["outcome"] != "open",
            timeout=timeout,
        )

    async def ari(self, path: str) -> Any:
        return await self.engine.ari.request("GET", path)

    async def attempts_ended(self, request_id: int, count: int, timeout: float = 10) -> list[Any]:
        """The request's ``count`` call attempts once each has its end written: a phone hears
        the hang-up before the engine records the attempt's outcome."""
        return await until(
            lambda: self.attempts(request_id),
            lambda rows: len(rows) >= count and all(r["ended_at"] is not None for r in rows),
            timeout=timeout,
        )

    async def attempts(self, request_id: int) -> list[Any]:
        return list(
            await self.pool.fetch(
                "SELECT * FROM call_attempts WHERE request_id = $1 ORDER BY id", request_id
            )
        )


async def _hang_up_leftovers(info: SandboxInfo, session: aiohttp.ClientSession) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth(info.ari_user, info.ari_password)}
    async with session.get(info.ari_url + "/channels", headers=auth) as resp:
        channels = await resp.json() if resp.status == 200 else []
    for channel in channels:
        async with session.delete(info.ari_url + f"/channels/{channel['id']}", headers=auth):
            pass
    async with session.get(info.ari_url + "/bridges", headers=auth) as resp:
        bridges = await resp.json() if resp.status == 200 else []
    for bridge in bridges:
        async with session.delete(info.ari_url + f"/bridges/{bridge['id']}", headers=auth):
            pass


@pytest.fixture
async def harness(
    sandbox: SandboxInfo, dsn: str, cel_dsn: str, phones: PhoneBook
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    engines: list[Engine] = []
    session = aiohttp.ClientSession()
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))

    async def start(**overrides: Any) -> Harness:
        settings = settings_from_env(
            sandbox.engine_env(),
            database_url=dsn,
            cel_database_url=cel_dsn,
            api_token=API_TOKEN,
            link_secret="e2e-link-secret",
            http_port=0,
            dial_routes=overrides.pop("dial_routes", None) or phones.routes(),
            ring_timeout=overrides.pop("ring_timeout", 4),
            retry_delay=overrides.pop("retry_delay", 3),
            digit_timeout=overrides.pop("digit_timeout", 4),
            # One call to the client unless a test is about several (IVR_CLIENT_ATTEMPTS).
            client_attempts=overrides.pop("client_attempts", 1),
            **overrides,
        )
        engine = Engine(settings)
        engines.append(engine)
        await engine.start()
        await engine.ari.wait_connected(10)
        return Harness(engine, sandbox, session)

    try:
        yield start
    finally:
        for engine in engines:
            await engine.close()
        # A stopping engine leaves bridged consultations up (the next engine adopts them):
        # whatever a test left in Asterisk is hung up here, not in the next test.
        await _hang_up_leftovers(sandbox, session)
        await session.close()
        loop.set_exception_handler(previous_handler)
    for engine in engines:
        # No flow task, call leg or bridge outlives the engine.
        assert engine.dispatcher is not None and not engine.dispatcher.tasks
        assert not engine.calls.legs, list(engine.calls.legs)
        assert not engine.calls.bridge_entries, list(engine.calls.bridge_entries)
    assert not unhandled, [c.get("message") for c in unhandled]


@pytest.fixture
async def engine_process(
    sandbox: SandboxInfo, dsn: str, cel_dsn: str, phones: PhoneBook, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[EngineProcess]]]:
    """Start engines as processes of their own; every one is ended at teardown."""
    started: list[EngineProcess] = []

    async def start(**overrides: str) -> EngineProcess:
        env = {
            **sandbox.engine_env(),
            "IVR_DATABASE_URL": dsn,
            "IVR_CEL_DATABASE_URL": cel_dsn,
            "IVR_API_TOKEN": API_TOKEN,
            "IVR_LINK_SECRET": "e2e-link-secret",
            "IVR_DIAL_ROUTES": json.dumps(phones.routes()),
            "IVR_RING_TIMEOUT": "4",
            "IVR_RETRY_DELAY": "3",
            "IVR_DIGIT_TIMEOUT": "4",
            "IVR_LOG_FORMAT": "json",
            **{f"IVR_{key.upper()}": value for key, value in overrides.items()},
        }
        engine = EngineProcess(len(started), env, tmp_path / f"engine-{len(started)}.log")
        started.append(engine)
        await engine.start()
        return engine

    try:
        yield start
    finally:
        for engine in started:
            await engine.kill()


class AriObserver:
    """A second ARI application subscribed to everything: what Asterisk says happened,
    independently of the engine under test. Keeps the events of the given types, and can
    make REST calls of its own (channels it creates land in its application)."""

    APP = "e2e-observer"

    def __init__(self, info: SandboxInfo, *types: str) -> None:
        self.info = info
        self.types = set(types)
        self.events: list[dict[str, Any]] = []
        token = base64.b64encode(f"{info.ari_user}:{info.ari_password}".encode()).decode()
        self._http = aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"})
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AriObserver:
        self._task = asyncio.create_task(self._watch(), name="ari-observer")
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({self._task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            await self._task  # raises why it could not connect
        assert self._ready.is_set(), "the ARI observer did not connect in 10 s"
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and {"ChannelEnteredBridge", "ChannelLeftBridge"} <= self.types:
            # Left as a test saw a consultation end (in PostgreSQL): Asterisk's events on this
            # socket may come a little after the engine's, so wait (5 s at most; what is then
            # missing fails the test's own assertions) until each channel that entered a
            # bridge is seen leaving it.
            for _ in range(250):
                if not self._unleft():
                    break
                await asyncio.sleep(0.02)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._http.close()

    def _unleft(self) -> set[tuple[str, str]]:
        """(bridge, channel) pairs seen entering and not yet seen leaving."""

        def pairs(kind: str) -> set[tuple[str, str]]:
            return {
                (e["bridge"]["id"], e["channel"]["id"]) for e in self.events if e["type"] == kind
            }

        return pairs("ChannelEnteredBridge") - pairs("ChannelLeftBridge")

    def of(self, kind: str, channel_id: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == kind and e.get("channel", {}).get("id") == channel_id
        ]

    async def wait_for(self, kind: str, channel_id: str, timeout: float = 10) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.of(kind, channel_id):
            assert loop.time() < deadline, f"no {kind} for {channel_id} in {timeout} s"
            await asyncio.sleep(0.02)
        return self.of(kind, channel_id)[0]

    def times(self, kind: str, bridge_id: str | None = None) -> list[datetime]:
        return [
            parse_ari_time(e["timestamp"])
            for e in self.events
            if e["type"] == kind and (bridge_id is None or e["bridge"]["id"] == bridge_id)
        ]

    def bridged_seconds(self, bridge_id: str | None = None) -> float:
        """From the second party entering the bridge to the first one leaving it."""
        entered = self.times("ChannelEnteredBridge", bridge_id)
        left = self.times("ChannelLeftBridge", bridge_id)
        assert len(entered) >= 2 and left, self.events
        return (min(left) - max(entered)).total_seconds()

    async def rest(self, method: str, path: str, **params: str) -> Any:
        async with self._http.request(method, self.info.ari_url + path, params=params) as resp:
            assert resp.status < 300, (method, path, resp.status, await resp.text())
            return await resp.json() if resp.content_length else None

    async def _watch(self) -> None:
        url = self.info.ari_url.replace("http", "ws", 1) + "/events"
        params = {"app": self.APP, "subscribeAll": "true"}
        async with self._http.ws_connect(url, params=params) as ws:
            self._ready.set()
            async for msg in ws:
                event = json.loads(msg.data)
                if event.get("type") in self.types:
                    self.events.append(event)


def observing(info: SandboxInfo) -> AriObserver:
    """What Asterisk says about bridges: ``async with observing(info) as observer``."""
    return AriObserver(info, "ChannelEnteredBridge", "ChannelLeftBridge")


def money(value: str) -> Decimal:
    return Decimal(value)
