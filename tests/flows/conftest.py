"""The call flows on the fake ARI and a real throwaway PostgreSQL, wired as the engine wires them.

This is the one module of tests/flows that knows the engine's constructors and import paths
(Settings, AriClient, CallControl, FlowDeps, Dispatcher, Recovery): the
tests build rows, drive the fake phones and read the database through :class:`Flows`, and
assert with SQL on the pool.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from ivr_engine.ari.client import AriClient
from ivr_engine.ari.models import Event
from ivr_engine.calls import CallControl
from ivr_engine.config import Settings
from ivr_engine.dispatcher import Dispatcher
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.held import HoldingCalls
from ivr_engine.flows.inbound import InboundCalls
from ivr_engine.prompts import Prompt, sound_uri
from ivr_engine.recovery import Recovery
from ivr_engine.store import attempts, engines, waiting
from ivr_engine.store.notify import REQUESTS, Listener
from ivr_engine.transcript import transcript
from tests.fakes import FakeAri, FakeChannel, Phone

ARI_USER = "ivr-engine-test"
ARI_PASSWORD = "fake-ari-secret"
APP = "ivr-engine-test"

EXPERT = "+390600000101"
OTHER_EXPERT = "+390600000102"
CLIENT = "+393330000201"
OTHER_CLIENT = "+393330000202"
THIRD_CLIENT = "+393330000203"

# Short enough for tests that take well under a second each (the originate's timeout is whole
# seconds, at least 1); each test may override any of them.
FAST: dict[str, Any] = {
    "ring_timeout": 1,
    "retry_delay": 60,
    "digit_timeout": 0.3,
    "prompt_tries": 2,
    "max_attempts": 3,
    "client_attempts": 1,  # the tests of several calls to the client set their own
}


def flow_settings(dsn: str, ari_url: str, **overrides: Any) -> Settings:
    """Settings of an engine on ``dsn`` whose Asterisk is the fake at ``ari_url``."""
    values: dict[str, Any] = {
        "database_url": dsn,
        "ari_url": ari_url,
        "ari_user": ARI_USER,
        "ari_password": ARI_PASSWORD,
        "ari_app": APP,
        "ami_secret": "unused",
        "api_token": "unused",
        "link_secret": "unused",
        **FAST,
        **overrides,
    }
    return Settings(**values)


class Flows:
    """The engine's call-flow half (no HTTP, AMI or mail sender), as Engine.start wires it."""

    def __init__(self, pool: asyncpg.Pool, fake: FakeAri, settings: Settings) -> None:
        self.pool = pool
        self.fake = fake
        self.settings = settings
        self.ari = AriClient(
            settings.ari_url,
            settings.ari_user,
            settings.ari_password.get_secret_value(),
            settings.ari_app,
        )
        self.calls = CallControl(self.ari)
        self.deps = FlowDeps(settings=settings, pool=pool, calls=self.calls, holding=HoldingCalls())
        self.engine_id = uuid.uuid4()
        # Calls entering from the dialplan (service numbers, the planning number).
        self.inbound = InboundCalls(self.deps, engine_id=self.engine_id)
        self.calls.on_inbound(self.inbound.route)
        self.dispatcher = Dispatcher(
            self.deps, ready=self.ari.connected.is_set, engine_id=self.engine_id
        )
        self.recovery = Recovery(
            self.dispatcher, engine_id=self.engine_id, lease=settings.lease_seconds
        )
        # As the engine: PostgreSQL's notifications wake the dispatcher.
        self.listener = Listener(settings.database_url.get_secret_value())
        self.listener.on(REQUESTS, self.dispatcher.poke)
        self.hooks_run = 0  # times the on_connected hooks have all run
        self.dead = False
        self._dispatching = False
        self.ari.on_connected(self._on_ari_connected)

    async def _on_ari_connected(self) -> None:
        # As Engine._on_ari_connected: orphans of a previous run first, then dispatch.
        try:
            self.recovery.kick(stale_ok=True)
            if not self._dispatching:
                self._dispatching = True
                self.dispatcher.start()
            self.dispatcher.poke()
        finally:
            self.hooks_run += 1

    async def connect(self) -> None:
        """Open the ARI WebSocket and wait until the first on_connected hooks have run."""
        await engines.register(self.pool, self.engine_id, self.settings.ari_app, "test", 0)
        self.listener.start()
        await self.ari.start()
        await self.until(lambda: self.hooks_run >= 1, "the on_connected hooks")
        await self.until(lambda: self.recovery.passes >= 1, "the first recovery pass")

    async def close(self) -> None:
        """As Engine.close: the flows are cancelled (their calls hung up), then ARI closes."""
        await self.recovery.close()
        await self.dispatcher.close()
        await self.inbound.close()
        if self.hooks_run and not self.dead:
            await engines.stopped(self.pool, self.engine_id)
        await self.listener.close()
        await self.calls.close()
        await self.ari.close()

    async def die(self) -> None:
        """As kill -9: nothing more from this engine, its calls left as they are, no clean
        stop recorded, and its lease already expired (rather than waiting for it)."""
        self.dead = True
        await self.close()
        await self.pool.execute(
            "UPDATE engines SET heartbeat_at = now() - interval '1 hour' WHERE id = $1",
            self.engine_id,
        )

    # -- rows ------------------------------------------------------------------------------
    async def expert(
        self,
        phone: str = EXPERT,
        *,
        ivr: bool = True,
        rate: str = "1.50",
        email: str = "anna@example.org",
    ) -> int:
        return int(
            await self.pool.fetchval(
                "INSERT INTO experts (alias, phone, rate_per_minute, email, acceptance_ivr)"
                " VALUES ('Anna', $1, $2, $3, $4) RETURNING id",
                phone,
                Decimal(rate),
                email,
                ivr,
            )
        )

    async def request(
        self,
        expert_id: int,
        client_phone: str = CLIENT,
        *,
        alias: str = "Marco",
        due_in: float = 0.0,
        state: str = "waiting",
    ) -> int:
        """A client in the expert's waiting list (due in ``due_in`` s); the dispatcher is
        poked as the API does. A ``state`` other than waiting makes a row as a previous
        engine left it (with its claim recorded), for the recovery tests."""
        async with self.pool.acquire() as conn, conn.transaction():
            client_id = await conn.fetchval(
                "INSERT INTO clients (alias, phone, email) VALUES ($1, $2, $3)"
                " ON CONFLICT (phone) DO UPDATE SET alias = EXCLUDED.alias RETURNING id",
                alias,
                client_phone,
                f"{alias.lower()}@example.org",
            )
            request_id = int(
                await conn.fetchval(
                    "INSERT INTO requests (expert_id, client_id, next_attempt_at)"
                    " VALUES ($1, $2, now() + make_interval(secs => $3)) RETURNING id",
                    expert_id,
                    client_id,
                    due_in,
                )
            )
            await conn.execute(
                "INSERT INTO request_events (request_id, to_state, detail)"
                " VALUES ($1, 'waiting', 'created')",
                request_id,
            )
            previous = "waiting"
            for step, detail in (
                ("ringing_expert", "attempt 1"),
                ("ringing_client", "expert_accepted"),
                ("connected", "bridged"),
            ):
                if previous == state:
                    break
                await conn.execute(
                    "UPDATE requests SET state = $2, attempts = 1 WHERE id = $1", request_id, step
                )
                await conn.execute(
                    "INSERT INTO request_events (request_id, from_state, to_state, detail)"
                    " VALUES ($1, $2, $3, $4)",
                    request_id,
                    previous,
                    step,
                    detail,
                )
                previous = step
        self.dispatcher.poke()
        return request_id

    async def left_calls(
        self, request_id: int, legs: Iterable[str], *, bridged_for: float | None = None
    ) -> list[str]:
        """Calls a previous engine left up in Asterisk for a request: an attempt row per leg
        and a channel in the fake; ``bridged_for``: both in a consultation that started that
        many seconds ago. Returns the channel ids."""
        channel_ids = []
        for leg in legs:
            number = await self.pool.fetchval(
                f"SELECT x.phone FROM requests r JOIN {leg}s x ON x.id = r.{leg}_id"
                " WHERE r.id = $1",
                request_id,
            )
            channel_id = await attempts.new(
                self.pool,
                request_id,
                leg=leg,
                purpose="offer" if leg == "expert" else "connect",
                dial_string=f"PJSIP/{number}@ivr-trunk",
            )
            await self.pool.execute(
                "UPDATE call_attempts SET answered_at = now(), outcome = 'answered'"
                " WHERE channel_id = $1",
                channel_id,
            )
            self.fake.add_channel(channel_id, number, app=self.settings.ari_app)
            channel_ids.append(channel_id)
        if bridged_for is not None:
            bridge_id = f"ivr-{request_id}-bridge"
            await self.pool.execute(
                "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
                " expert_channel_id, client_channel_id, rate_per_minute, bridge_start, seen_at)"
                " SELECT r.id, r.expert_id, r.client_id, $2, $3, $4, e.rate_per_minute,"
                " now() - make_interval(secs => $5), now() - interval '1 second'"
                " FROM requests r JOIN experts e ON e.id = r.expert_id WHERE r.id = $1",
                request_id,
                bridge_id,
                channel_ids[0],
                channel_ids[1],
                bridged_for,
            )
            self.fake.add_bridge(bridge_id, *channel_ids)
        return channel_ids

    async def leave(self, request_id: int) -> None:
        """The client leaves the waiting list, as the API's DELETE does."""
        await waiting.leave(self.pool, request_id)
        await self.dispatcher.cancel_request(request_id)

    # -- reading what happened ------------------------------------------------------------
    async def wait_state(self, request_id: int, *states: str, timeout: float = 5.0) -> str:
        """Wait until the request is in one of ``states`` (its flow may still be running)."""
        return await self._wait(request_id, states, timeout, settled=False)

    async def settled(
        self, request_id: int, *states: str, attempts: int = 1, timeout: float = 5.0
    ) -> str:
        """Wait until the expert has been called ``attempts`` times for the request, the
        request is in one of ``states`` and its flow task has ended."""
        return await self._wait(request_id, states, timeout, settled=True, attempts=attempts)

    async def _wait(
        self,
        request_id: int,
        states: tuple[str, ...],
        timeout: float,
        *,
        settled: bool,
        attempts: int = 0,
    ) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            row = await self.pool.fetchrow(
                "SELECT state, attempts FROM requests WHERE id = $1", request_id
            )
            state = row["state"]
            running = request_id in self.dispatcher.tasks
            if state in states and row["attempts"] >= attempts and not (settled and running):
                return str(state)
            if loop.time() > deadline:
                story = "\n".join(await transcript(self.pool, request_id))
                raise AssertionError(
                    f"request {request_id} is {state} (flow running: {running}),"
                    f" expected {states}\n{story}"
                )
            await asyncio.sleep(0.01)

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        """Wait until an engine-side ``predicate`` holds (for the fake's side, use
        ``fake.wait_until``, which is woken by each change)."""
        await _until(predicate, what, timeout)

    async def until_async(
        self,
        read: Callable[[], Awaitable[Any]],
        what: str,
        *,
        expect: Any = None,
        timeout: float = 5.0,
    ) -> Any:
        """Wait until ``await read()`` is ``expect`` (or, with no ``expect``, truthy)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await read()
            if (value == expect) if expect is not None else bool(value):
                return value
            if loop.time() > deadline:
                raise AssertionError(f"still waiting after {timeout}s for {what}: {value!r}")
            await asyncio.sleep(0.02)

    async def row(self, request_id: int) -> asyncpg.Record:
        return await self.pool.fetchrow("SELECT * FROM requests WHERE id = $1", request_id)

    async def events(self, request_id: int) -> list[tuple[str | None, str, str]]:
        rows = await self.pool.fetch(
            "SELECT from_state, to_state, detail FROM request_events"
            " WHERE request_id = $1 ORDER BY id",
            request_id,
        )
        return [(r["from_state"], r["to_state"], r["detail"]) for r in rows]

    async def attempts(self, request_id: int) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT * FROM call_attempts WHERE request_id = $1 ORDER BY id", request_id
            )
        )

    async def consultation(self, request_id: int) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM consultations WHERE request_id = $1", request_id
        )

    async def emails(self, request_id: int) -> list[str]:
        """The kinds of the emails queued about the request, oldest first."""
        rows = await self.pool.fetch(
            "SELECT kind FROM outbox_emails WHERE request_id = $1 ORDER BY id", request_id
        )
        return [r["kind"] for r in rows]

    async def expert_row(self, expert_id: int) -> asyncpg.Record:
        return await self.pool.fetchrow("SELECT * FROM experts WHERE id = $1", expert_id)

    def call_in(self, dialled: str, caller: str, script: Phone | None = None) -> FakeChannel:
        """A phone at ``caller`` calls ``dialled``: the channel enters the application from
        the dialplan (``ivr-inbound``), ringing, as Asterisk sends it."""
        channel = FakeChannel(
            self.fake,
            f"in-{self.fake.next_name()}",
            endpoint=f"PJSIP/{caller}@ivr-trunk",
            phone=script or Phone(),
            app=self.settings.ari_app,
            args=["inbound", dialled],
            caller_id=caller,
        )
        channel.state, channel.in_stasis = "Up", True
        channel.answered_at = channel.created_at
        self.fake.channels[channel.id] = channel
        self.fake.history.append(channel)
        self.fake.emit(
            self.settings.ari_app, "StasisStart", channel=channel.snapshot(), args=channel.args
        )
        return channel

    def heard(self, channel: FakeChannel, prompt: str) -> bool:
        """Whether the engine played the prompt named ``prompt`` to ``channel``."""
        return sound_uri(Prompt(prompt), self.settings.sound_prefix) in channel.media


StartFlows = Callable[..., Awaitable[Flows]]


class RawAri:
    """An AriClient on the fake alone (no database), and the events it parsed."""

    def __init__(self, fake: FakeAri, password: str = ARI_PASSWORD) -> None:
        self.fake = fake
        self.client = AriClient(fake.url, ARI_USER, password, APP)
        self.events: list[Event] = []
        self.client.on_event(self.events.append)

    def types(self) -> list[str]:
        """The class each event was parsed into (``Event`` when the engine does not know it)."""
        return [type(e).__name__ for e in self.events]

    async def wait_for(self, event_type: str, count: int = 1) -> None:
        """Wait until the client has received ``count`` events of ``event_type``."""
        await _until(lambda: self.types().count(event_type) >= count, f"{count} {event_type}")


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"still waiting after {timeout}s for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def raw_ari(fake_ari: FakeAri) -> AsyncIterator[RawAri]:
    raw = RawAri(fake_ari)
    await raw.client.start()
    await raw.client.wait_connected(5)
    try:
        yield raw
    finally:
        await raw.client.close()


@pytest.fixture
async def fake_ari() -> AsyncIterator[FakeAri]:
    fake = FakeAri(user=ARI_USER, password=ARI_PASSWORD)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def flows(
    pool: asyncpg.Pool, dsn: str, fake_ari: FakeAri, request: pytest.FixtureRequest
) -> AsyncIterator[StartFlows]:
    """``await flows(**settings)``: the call-flow engine on this test's database and the fake
    ARI, connected (``connect=False``: not yet, to put rows in first). After the test: no flow
    task, leg or bridge is left in the engine, no channel in the fake, and no error reached
    the event loop unobserved (not checked for a test of a known bug, marked xfail)."""
    started: list[Flows] = []
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))

    async def start(*, connect: bool = True, **overrides: Any) -> Flows:
        h = Flows(pool, fake_ari, flow_settings(dsn, fake_ari.url, **overrides))
        started.append(h)
        if connect:
            await h.connect()
        return h

    try:
        yield start
    finally:
        for h in started:
            await h.close()
        loop.set_exception_handler(previous_handler)
    if request.node.get_closest_marker("xfail") is not None:
        return
    for h in started:
        assert not h.dispatcher.tasks, list(h.dispatcher.tasks)
        assert not h.calls.legs, list(h.calls.legs)
        assert not h.calls.bridge_entries, list(h.calls.bridge_entries)
    assert not fake_ari.channels, list(fake_ari.channels)
    assert not unhandled, [c.get("message") for c in unhandled]
