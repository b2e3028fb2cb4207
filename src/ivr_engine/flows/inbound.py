"""Calls into the service: the planning number gets the experts' phone menu; any other
number is told politely that it is not served (never silence).

``InboundCalls`` owns one task per inbound call and cancels them on close.
"""

from __future__ import annotations

import asyncio

import structlog

from ivr_engine.aio import finish
from ivr_engine.ari.models import StasisStart
from ivr_engine.calls import Leg
from ivr_engine.errors import Hangup
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.phone_menu import PhoneMenu
from ivr_engine.prompts import Prompt, sound_uri

log = structlog.get_logger(__name__)


class InboundCalls:
    def __init__(self, deps: FlowDeps) -> None:
        self.deps = deps
        self._tasks: set[asyncio.Task[None]] = set()

    def route(self, event: StasisStart) -> None:
        """The CallControl hook for a channel that entered the app from the dialplan."""
        settings = self.deps.settings
        leg = self.deps.calls.adopt(event.channel.id, settings.default_language)
        dialled = event.args[1] if len(event.args) > 1 else ""
        if dialled == settings.planning_number:
            work = self._menu(PhoneMenu(self.deps, leg, event.channel.caller.number))
        else:
            work = self._decline(leg)
        task = asyncio.create_task(work, name=f"inbound-{leg.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    async def _decline(self, leg: Leg) -> None:
        try:
            await leg.answer()
            await leg.play(sound_uri(Prompt.SERVICE_UNAVAILABLE, self.deps.settings.sound_prefix))
        except Hangup:
            pass
        finally:
            await finish(leg.hangup())
            self.deps.calls.forget(leg)
