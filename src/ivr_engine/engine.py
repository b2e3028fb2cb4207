"""The composition root: builds PostgreSQL, ARI, AMI, the dispatcher, the email sender and
the HTTP server from the settings, and wires them together. Imported only by ``cli``.

Wake-ups go through PostgreSQL: one LISTEN connection (store.notify) pokes the dispatcher
on every waiting-list change and the email sender on every queued email, whichever
engine made the change.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import signal
from dataclasses import replace
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from ivr_engine.ami import AmiMonitor
from ivr_engine.ari.client import AriClient
from ivr_engine.calls import CallControl
from ivr_engine.config import Settings
from ivr_engine.dispatcher import Dispatcher
from ivr_engine.errors import IvrError
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.held import HoldingCalls
from ivr_engine.flows.inbound import InboundCalls
from ivr_engine.flows.line_test import LineTests
from ivr_engine.lease import Lease
from ivr_engine.mail import OutboxConfig, OutboxSender
from ivr_engine.recovery import Recovery
from ivr_engine.services import RequestActions
from ivr_engine.store import connect_pool, migrate
from ivr_engine.store.notify import OUTBOX, REQUESTS, Listener
from ivr_engine.telemetry import Probes, Telemetry
from ivr_engine.web import WebDeps, make_app
from ivr_engine.web.live import Hub

log = structlog.get_logger(__name__)


def readiness(*, database: bool, ari: bool, draining: bool) -> bool:
    """Ready to take work (/readyz): PostgreSQL answers, ARI is connected, and the engine
    is not draining. AMI is left out: without it calls still flow (it only watches)."""
    return database and ari and not draining


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._cel_pool: asyncpg.Pool | None = None
        self.ari = AriClient(
            settings.ari_url,
            settings.ari_user,
            settings.ari_password.get_secret_value(),
            settings.ari_app,
            rest_over_websocket=settings.ari_rest_over_websocket,
        )
        self.calls = CallControl(self.ari)
        self.ami = AmiMonitor(
            settings.ami_host,
            settings.ami_port,
            settings.ami_user,
            settings.ami_secret.get_secret_value(),
        )
        self.listener = Listener(settings.database_url.get_secret_value())
        self.hub = Hub(self.listener)
        self.dispatcher: Dispatcher | None = None
        self.mailer: OutboxSender | None = None
        self.inbound: InboundCalls | None = None
        self.line_tests: LineTests | None = None
        self.lease: Lease | None = None
        self.recovery: Recovery | None = None
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        self.draining = False  # set when the engine starts stopping: /readyz answers 503
        self.telemetry = Telemetry(
            Probes(
                pool=lambda: self._pool,
                call_legs=lambda: len(self.calls.legs),
                flows=lambda: len(self.dispatcher.tasks) if self.dispatcher else 0,
                ari_connected=self.ari.connected.is_set,
                ari_connections=lambda: self.ari.connections,
                ami_healthy=lambda: self.ami.healthy,
                draining=lambda: self.draining,
            ),
            version=importlib.metadata.version("ivr-engine"),
        )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise IvrError("the engine is not started")
        return self._pool

    async def start(self, *, http: bool = True) -> None:
        s = self.settings
        self._pool = pool = await connect_pool(s.database_url.get_secret_value())
        await migrate(pool)
        self.lease = lease = Lease(pool, s.ari_app, s.lease_seconds, watched=self._watched)
        await lease.register()
        if s.cel_database_url is not None:
            # Connected on first use: Asterisk's record is read only to bill calls that
            # ended unwatched, and the engine must start even while that database is away.
            self._cel_pool = await asyncpg.create_pool(s.cel_dsn, min_size=0, max_size=2)
        deps = FlowDeps(
            settings=s,
            pool=pool,
            calls=self.calls,
            cel_pool=self._cel_pool,
            holding=HoldingCalls(),
        )
        self.line_tests = LineTests(deps, owner=lease.id, lease=s.lease_seconds)
        deps = replace(deps, line_test=self.line_tests.start)
        self.dispatcher = dispatcher = Dispatcher(
            deps, ready=self.ari.connected.is_set, engine_id=lease.id
        )
        self.recovery = Recovery(dispatcher, engine_id=lease.id, lease=s.lease_seconds)
        self.actions = RequestActions(
            pool,
            cancel_flow=dispatcher.cancel_request,
            line_test_hours=s.line_test_required_hours,
            policy=s.priority_policy,
        )
        self.mailer = mailer = OutboxSender(pool, OutboxConfig.from_settings(s))
        self.inbound = InboundCalls(deps, engine_id=lease.id)
        self.listener.on(REQUESTS, dispatcher.poke)
        self.listener.on(OUTBOX, lambda _payload: mailer.poke())
        mailer.start()
        lease.start(recover=self._recover)
        self.telemetry.start()
        self.listener.start()
        self.calls.on_inbound(self.inbound.route)
        self.ari.on_connected(self._on_ari_connected)
        self.ami.on_restart(self.calls.resync)
        await self.ari.start()
        await self.ami.start()
        if http:
            web_deps = WebDeps(
                settings=s,
                pool=pool,
                actions=self.actions,
                hub=self.hub,
                health=self.health,
                metrics=self.telemetry,
                line_test=self.line_tests.start,
            )
            self._runner = web.AppRunner(make_app(web_deps), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, s.http_host, s.http_port)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.http_port = sockets[0].getsockname()[1] if sockets else s.http_port
            loop = type(asyncio.get_running_loop())
            log.info(
                "http.listening",
                host=s.http_host,
                port=self.http_port,
                event_loop=f"{loop.__module__}.{loop.__qualname__}",
            )

    async def _on_ari_connected(self) -> None:
        # The calls of a stopped or dead engine are adopted in the background (adopting waits
        # for ARI events, which this hook holds back); an expert whose orphaned call is not
        # settled yet is not rung meanwhile: the orphan still holds their one active slot.
        assert self.dispatcher is not None and self.lease is not None
        if self.recovery is not None:
            self.recovery.kick(stale_ok=self.lease.trusted())
        if self.inbound is not None:
            self.inbound.kick_adoption(self.settings.lease_seconds, stale_ok=self.lease.trusted())
        if self.line_tests is not None:
            self.line_tests.kick_recovery(stale_ok=self.lease.trusted())
        if self.dispatcher._loop_task is None and not self.dispatcher.draining:
            self.dispatcher.start()
        self.dispatcher.poke()

    def _recover(self, stale_ok: bool) -> None:
        if self.recovery is not None and self.ari.connected.is_set():
            self.recovery.kick(stale_ok=stale_ok)
        if self.inbound is not None and self.ari.connected.is_set():
            self.inbound.kick_adoption(self.settings.lease_seconds, stale_ok=stale_ok)
        if self.line_tests is not None and self.ari.connected.is_set():
            self.line_tests.kick_recovery(stale_ok=stale_ok)

    def _watched(self) -> list[int]:
        """Requests whose bridge this engine is watching now (none while ARI is away)."""
        if self.dispatcher is None or not self.ari.connected.is_set():
            return []
        return self.dispatcher.watched()

    async def drain(self, deadline: float) -> None:
        """SIGTERM: take no new work, leave bridged consultations up for the next engine,
        give calls not yet bridged ``deadline`` seconds, then end them politely."""
        log.info("engine.draining", deadline=deadline)
        self.draining = True  # /readyz: a load balancer sends no new work here
        drains = [self.dispatcher.drain(deadline)] if self.dispatcher is not None else []
        if self.line_tests is not None:
            drains.append(self.line_tests.drain(deadline))
        await asyncio.gather(*drains)

    async def health(self) -> dict[str, Any]:
        db_ok = False
        if self._pool is not None:
            try:
                db_ok = await self._pool.fetchval("SELECT true", timeout=2) is True
            except Exception:
                db_ok = False
        report = {
            "database": db_ok,
            "ari": self.ari.connected.is_set(),
            "ami": self.ami.healthy,
            "asterisk": self.ami.status,
            "active_calls": len(self.calls.legs),
        }
        report["ok"] = bool(db_ok and report["ari"] and report["ami"])
        report["draining"] = self.draining
        report["ready"] = readiness(database=db_ok, ari=bool(report["ari"]), draining=self.draining)
        return report

    async def close(self) -> None:
        """Stop taking work, end the calls in progress cleanly, release everything."""
        self.draining = True
        self.hub.close()  # ends the open event streams, so the server can stop
        await self.listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.recovery is not None:
            await self.recovery.close()
        if self.dispatcher is not None:
            await self.dispatcher.close()
        if self.line_tests is not None:
            await self.line_tests.close()
        if self.inbound is not None:
            await self.inbound.close()
        if self.lease is not None:
            await self.lease.release()
        if self.mailer is not None:
            await self.mailer.close()
        await self.telemetry.close()
        await self.ami.close()
        await self.calls.close()
        await self.ari.close()
        if self._cel_pool is not None:
            await self._cel_pool.close()
            self._cel_pool = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def serve(settings: Settings) -> None:
    engine = Engine(settings)
    await engine.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        await engine.drain(settings.drain_seconds)
    finally:
        log.info("engine.stopping")
        await engine.close()
