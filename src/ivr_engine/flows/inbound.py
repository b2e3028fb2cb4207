"""Calls into the service: the planning number gets the experts' phone menu, a service
number (IVR_SERVICE_NUMBERS) the clients' menu and holding (flows/service_line.py); any other
number is told politely that it is not served (never silence).

``InboundCalls`` owns one task per inbound call and cancels them on close. It also adopts the
holding callers of an engine that stopped or died (``adopt_holders``): Asterisk keeps their
channels in the app, so the announcements resume where they were.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

import structlog

from ivr_engine.aio import finish
from ivr_engine.ari.models import StasisStart
from ivr_engine.calls import Leg
from ivr_engine.errors import Hangup
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.held import HeldCall
from ivr_engine.flows.holding import HoldLine
from ivr_engine.flows.phone_menu import PhoneMenu
from ivr_engine.flows.service_line import ServiceLine
from ivr_engine.prompts import Prompt, sound_uri
from ivr_engine.store import holding

log = structlog.get_logger(__name__)


class InboundCalls:
    def __init__(self, deps: FlowDeps, engine_id: uuid.UUID | None = None) -> None:
        self.deps = deps
        self.engine_id = engine_id
        self._tasks: set[asyncio.Task[None]] = set()
        self._adopting: asyncio.Task[None] | None = None

    def route(self, event: StasisStart) -> None:
        """The CallControl hook for a channel that entered the app from the dialplan."""
        settings = self.deps.settings
        leg = self.deps.calls.adopt(event.channel.id, settings.default_language)
        dialled = event.args[1] if len(event.args) > 1 else ""
        caller = event.channel.caller.number
        service = settings.service_numbers.get(dialled)
        if dialled == settings.planning_number:
            work = self._menu(PhoneMenu(self.deps, leg, caller))
        elif service is not None:
            line = ServiceLine(
                self.deps,
                leg,
                dialled=dialled,
                caller=caller,
                service=service,
                engine=self.engine_id,
            )
            work = self._service(line)
        else:
            work = self._decline(leg)
        self._spawn(work, f"inbound-{leg.id}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def kick_adoption(self, lease: float, *, stale_ok: bool) -> None:
        """Adopt abandoned holding callers in the background (it waits for ARI answers)."""
        if self._adopting is None or self._adopting.done():
            self._adopting = asyncio.create_task(
                self._adopt_quietly(lease, stale_ok), name="holding-adoption"
            )
            self._tasks.add(self._adopting)
            self._adopting.add_done_callback(self._tasks.discard)

    async def _adopt_quietly(self, lease: float, stale_ok: bool) -> None:
        try:
            await self.adopt_holders(lease, stale_ok=stale_ok)
        except Exception as err:  # PostgreSQL or ARI away: the next pass tries again
            log.warning("holding.adoption_failed", error=repr(err))

    async def adopt_holders(self, lease: float, *, stale_ok: bool = True) -> int:
        """Resume the holding callers whose engine is gone; a channel Asterisk no longer has
        is a missed call, called back. Returns how many were taken."""
        if self.engine_id is None:
            return 0
        taken = 0
        found = await holding.abandoned_holders(
            self.deps.pool, self.engine_id, lease, stale_ok=stale_ok
        )
        for holder in found:
            if not await holding.adopt_holder(self.deps.pool, holder, self.engine_id):
                continue
            taken += 1
            leg = self.deps.calls.adopt(holder.channel, holder.language)
            await self.deps.calls.subscribe(channels=[leg.id], bridges=[])
            present = await self.deps.calls.channel_state(leg.id) is not None
            log.warning("holding.adopting", request_id=holder.request_id, present=present)
            if not present or holder.state.is_final:
                self.deps.calls.forget(leg)
                await holding.stop_holding(
                    self.deps.pool,
                    holder.request_id,
                    holder.channel,
                    missed_minutes=self.deps.settings.missed_callback_minutes,
                )
                await holding.end_call(self.deps.pool, holder.channel, "interrupted")
                continue
            line = HoldLine(self.deps, HeldCall(leg, holder.request_id))
            self._spawn(self._resume(line), f"holding-{leg.id}")
        return taken

    async def close_quietly(self) -> None:
        """Stop every inbound task as a crash would: no goodbye, no hang-up, nothing written
        (the tests' kill -9; holding callers are then adopted by the next engine)."""
        if self.deps.holding is not None:
            self.deps.holding.detached = True
        await self.close()

    @property
    def _detached(self) -> bool:
        return self.deps.holding is not None and self.deps.holding.detached

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _menu(self, menu: PhoneMenu) -> None:
        structlog.contextvars.bind_contextvars(channel_id=menu.leg.id, flow="phone_menu")
        try:
            await menu.run()
        except Exception:
            log.exception("menu.crashed")
        finally:
            await finish(menu.leg.hangup())
            self.deps.calls.forget(menu.leg)

    async def _service(self, line: ServiceLine) -> None:
        structlog.contextvars.bind_contextvars(channel_id=line.leg.id, flow="service_line")
        try:
            await line.run()
        except Exception:
            log.exception("service_line.crashed")
        finally:
            if not (line.bridged or self._detached):
                await finish(line.leg.hangup())
            self.deps.calls.forget(line.leg)

    async def _resume(self, line: HoldLine) -> None:
        structlog.contextvars.bind_contextvars(channel_id=line.leg.id, flow="holding_adopted")
        outcome = "hung_up"
        try:
            outcome = await line.run()
        except Hangup:
            pass
        except Exception:
            log.exception("holding.crashed")
        finally:
            if not self._detached:
                await finish(holding.end_call(self.deps.pool, line.leg.id, outcome))
            if not (line.bridged or self._detached):
                await finish(line.leg.hangup())
            self.deps.calls.forget(line.leg)

    async def _decline(self, leg: Leg) -> None:
        try:
            await leg.answer()
            await leg.play(sound_uri(Prompt.SERVICE_UNAVAILABLE, self.deps.settings.sound_prefix))
        except Hangup:
            pass
        finally:
            await finish(leg.hangup())
            self.deps.calls.forget(leg)
