"""The engine: one process wiring PostgreSQL, ARI, AMI, the dispatcher and the HTTP API."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from ivr_engine.aio import finish
from ivr_engine.ami import AmiMonitor
from ivr_engine.api import make_app
from ivr_engine.ari.client import AriClient
from ivr_engine.ari.models import StasisStart
from ivr_engine.calls import CallControl, Leg
from ivr_engine.config import Settings
from ivr_engine.dispatcher import Dispatcher, recover_orphans
from ivr_engine.errors import Hangup
from ivr_engine.flows.acceptance import FlowDeps
from ivr_engine.flows.phone_menu import PhoneMenu
from ivr_engine.mail.sender import OutboxConfig, OutboxSender
from ivr_engine.panel.live import Hub
from ivr_engine.prompts import Prompt, sound_uri
from ivr_engine.store import RequestStore, connect_pool, migrate
from ivr_engine.store import planning as planning_store
from ivr_engine.store.requests import RequestView

log = structlog.get_logger(__name__)


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.ari = AriClient(
            settings.ari_url,
            settings.ari_user,
            settings.ari_password.get_secret_value(),
            settings.ari_app,
        )
        self.calls = CallControl(self.ari)
        self.ami = AmiMonitor(
            settings.ami_host,
            settings.ami_port,
            settings.ami_user,
            settings.ami_secret.get_secret_value(),
        )
        self._runner: web.AppRunner | None = None
        self._inbound_tasks: set[asyncio.Task[None]] = set()
        self.http_port: int | None = None
        self.hub = Hub(settings.database_url.get_secret_value())

    @property
    def store(self) -> RequestStore:
        return self.dispatcher.store

    async def start(self, *, http: bool = True) -> None:
        s = self.settings
        self.pool = await connect_pool(s.database_url.get_secret_value())
        await migrate(self.pool)
        deps = FlowDeps(settings=s, store=RequestStore(self.pool), calls=self.calls)
        self.dispatcher = Dispatcher(deps, ready=self.ari.connected.is_set)
        deps.on_change = self.dispatcher.poke
        deps.refuse_all = self.refuse_all
        self.mailer = OutboxSender(self.pool, OutboxConfig.from_settings(s))
        self.dispatcher.on_flow_done.append(self.mailer.poke)
        self.mailer.start()
        self.hub.start()
        self.calls.on_inbound(self._inbound)
        self.ari.on_connected(self._on_ari_connected)
        self.ami.on_restart(self.calls.resync)
        await self.ari.start()
        await self.ami.start()
        if http:
            self._runner = web.AppRunner(make_app(self), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, s.http_host, s.http_port)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.http_port = sockets[0].getsockname()[1] if sockets else s.http_port
            log.info("http.listening", host=s.http_host, port=self.http_port)

    async def _on_ari_connected(self) -> None:
        # Runs before the first request is dispatched: orphans of a previous run first.
        await recover_orphans(self.dispatcher)
        if self.dispatcher._loop_task is None:
            self.dispatcher.start()
        self.dispatcher.poke()

    def _inbound(self, event: StasisStart) -> None:
        """Calls into the service: the planning number gets the experts' phone menu; any
        other number is told politely that it is not served (never silence)."""
        leg = self.calls.adopt(event.channel.id, self.settings.default_language)
        dialled = event.args[1] if len(event.args) > 1 else ""
        if dialled == self.settings.planning_number:
            menu = PhoneMenu(self.dispatcher.deps, leg, event.channel.caller.number)
            work = self._menu(menu)
        else:
            work = self._decline_inbound(leg)
        task = asyncio.create_task(work, name=f"inbound-{leg.id}")
        self._inbound_tasks.add(task)
        task.add_done_callback(self._inbound_tasks.discard)

    async def refuse_all(self, expert_id: int) -> tuple[int, datetime | None]:
        """Refuse every waiting client of the expert (each emailed an appointment at the
        next opening): the phone menu, the API and the panel all come here."""
        refused = await planning_store.refuse_all(self.store, expert_id)
        self.mailer.poke()
        return refused

    async def solicit(self, request_id: int) -> RequestView:
        """The expert asks to be called now for a waiting client (API, email link, panel)."""
        view = await self.store.solicit(request_id)
        self.dispatcher.poke()
        return view

    async def _menu(self, menu: PhoneMenu) -> None:
        structlog.contextvars.bind_contextvars(channel_id=menu.leg.id, flow="phone_menu")
        try:
            await menu.run()
        except Exception:
            log.exception("menu.crashed")
        finally:
            await finish(menu.leg.hangup())
            self.calls.forget(menu.leg)

    async def _decline_inbound(self, leg: Leg) -> None:
        try:
            await leg.answer()
            await leg.play(sound_uri(Prompt.SERVICE_UNAVAILABLE, self.settings.sound_prefix))
        except Hangup:
            pass
        finally:
            await finish(leg.hangup())
            self.calls.forget(leg)

    async def health(self) -> dict[str, Any]:
        db_ok = False
        if self.pool is not None:
            try:
                db_ok = await self.pool.fetchval("SELECT true", timeout=2) is True
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
        return report

    async def close(self) -> None:
        """Stop taking work, end the calls in progress cleanly, release everything."""
        await self.hub.close()  # ends the open event streams, so the server can stop
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if hasattr(self, "dispatcher"):
            await self.dispatcher.close()
        for task in list(self._inbound_tasks):
            task.cancel()
        await asyncio.gather(*self._inbound_tasks, return_exceptions=True)
        if hasattr(self, "mailer"):
            await self.mailer.close()
        await self.ami.close()
        await self.ari.close()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None


async def serve(settings: Settings) -> None:
    engine = Engine(settings)
    await engine.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("engine.stopping")
        await engine.close()
