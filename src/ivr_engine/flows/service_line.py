"""A client calls a service number (IVR_SERVICE_NUMBERS): choose the expert, then hold.

service_welcome     expert code + #  → that expert
                    0                → the first available expert of the number's category
                    *                → experts: the phone menu (PIN), as on the planning number
                    silence/unknown  → asked again, three times at most, then goodbye
withheld number     told we cannot call back, goodbye (counted in the figures)
not taking calls    told; asked for another code
closed / paused     "available again in N minutes/hours; press 1 to be called back then"
already in line     told they keep their place, goodbye
else                holding (flows/holding.py)
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime

import structlog

from ivr_engine.calls import Leg
from ivr_engine.config import ServiceNumber
from ivr_engine.domain.numbers import dialable
from ivr_engine.domain.planning import Reason
from ivr_engine.errors import Conflict, Hangup, IvrError
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.held import HeldCall
from ivr_engine.flows.holding import HoldLine
from ivr_engine.flows.phone_menu import PhoneMenu
from ivr_engine.prompts import Prompt, sound_uri
from ivr_engine.store import holding as store
from ivr_engine.store import people, waiting
from ivr_engine.store import planning as availability
from ivr_engine.store.retry import durably
from ivr_engine.store.waiting import Holding

log = structlog.get_logger(__name__)


class ServiceLine:
    def __init__(
        self,
        deps: FlowDeps,
        leg: Leg,
        *,
        dialled: str,
        caller: str,
        service: ServiceNumber,
        engine: uuid.UUID | None = None,
    ) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.pool = deps.pool
        self.leg = leg
        self.dialled = dialled
        self.raw_caller = caller
        self.service = service
        self.engine_id = engine
        self.caller = ""  # the number we may call back, "" when withheld or not callable
        self.outcome = "hung_up"
        self.hold: HoldLine | None = None

    def media(self, prompt: Prompt) -> str:
        return sound_uri(prompt, self.settings.sound_prefix)

    @property
    def bridged(self) -> bool:
        return self.hold is not None and self.hold.bridged

    async def run(self) -> None:
        try:
            self.caller = dialable(self.raw_caller, self.settings.dial_policy)
        except (IvrError, ValueError):
            self.caller = ""
        await durably(
            lambda: store.record_call(
                self.pool,
                self.leg.id,
                dialled=self.dialled,
                caller=self.caller,
                withheld=not self.caller,
            ),
            "inbound call",
        )
        try:
            self.outcome = await self._run()
        except Hangup:
            pass
        except asyncio.CancelledError:
            if self.deps.holding is not None and self.deps.holding.detached:
                raise  # a crash: the call is left as it is
            self.outcome = "interrupted"
            await asyncio.shield(self._end())
            raise
        await self._end()

    async def _end(self) -> None:
        # One summary line per call, with every key the caller pressed.
        log.info("service_line.done", outcome=self.outcome, keys="".join(self.leg.dtmf_log))
        await durably(lambda: store.end_call(self.pool, self.leg.id, self.outcome), "end")

    async def _run(self) -> str:
        leg = self.leg
        leg.language = self.service.language
        # A channel that came in from the dialplan is followed only while in the application:
        # subscribed, its ChannelDestroyed (the real hangup cause, which the consultation's
        # watch waits for) also arrives after its StasisEnd.
        await self.deps.calls.subscribe(channels=[leg.id], bridges=[])
        await leg.answer()
        expert_id = await self._choose()
        if expert_id is None:
            return self.outcome
        if expert_id == -1:  # an expert: the phone menu
            await PhoneMenu(self.deps, leg, self.raw_caller).run()
            return "expert_menu"
        if not self.caller:
            await leg.play(self.media(Prompt.WITHHELD_NUMBER))
            return "declined"
        await durably(lambda: store.note_call(self.pool, leg.id, expert_id=expert_id), "note")
        client_id = await people.client_by_phone(
            self.pool, self.caller, language=self.service.language
        )
        av = await availability.load(self.pool, expert_id)
        now = datetime.now(UTC)
        state = av.at(now)
        if not state.open and state.reason is not Reason.PAUSED:
            # Closed, outside hours or off; a pause does not close the list (as the API).
            return await self._closed(expert_id, client_id, state.next_opening, now)
        request_id = await self._join(expert_id, client_id, holding=True)
        if request_id is None:
            await leg.play(self.media(Prompt.ALREADY_IN_LINE))
            return "declined"
        return await self._hold(request_id, client_id)

    async def _choose(self) -> int | None:
        """The expert's id (-1: an expert wants their menu), or None after goodbye."""
        s = self.settings
        for _ in range(s.prompt_tries):
            typed = await self.leg.collect_digits(
                [self.media(Prompt.SERVICE_WELCOME), self.media(Prompt.EXPERT_MENU_STAR)],
                max_digits=9,
                timeout=s.digit_timeout,
            )
            log.info("service_line.typed", typed=typed)
            if typed is None or typed == "":
                continue
            if typed.startswith("*"):
                return -1
            if typed == "0":
                chosen = await self._first_available()
                if chosen is None:
                    await self.leg.play(self.media(Prompt.NOBODY_AVAILABLE))
                    self.outcome = "declined"
                    return None
                return chosen
            if not typed.isdigit():
                await self.leg.play(self.media(Prompt.UNKNOWN_EXPERT_CODE))
                continue
            expert = await store.expert(self.pool, int(typed))
            if expert is None:
                await self.leg.play(self.media(Prompt.UNKNOWN_EXPERT_CODE))
                continue
            if not expert.takes_calls:
                await self.leg.play(self.media(Prompt.EXPERT_NOT_TAKING_CALLS))
                continue
            return expert.id
        await self.leg.play(self.media(Prompt.GOODBYE))
        self.outcome = "declined"
        return None

    async def _first_available(self, exclude: int | None = None) -> int | None:
        now = datetime.now(UTC)
        for expert_id in await store.first_available(self.pool, self.service.category):
            if (
                expert_id != exclude
                and (await availability.load(self.pool, expert_id)).at(now).open
            ):
                return expert_id
        return None

    async def _join(
        self,
        expert_id: int,
        client_id: int,
        *,
        holding: bool,
        not_before: datetime | None = None,
    ) -> int | None:
        """A new request (None: the caller is already in this expert's list)."""
        engine = self.engine_id if holding else None
        try:
            view = await waiting.create(
                self.pool,
                expert_id,
                client_id,
                policy=self.settings.policy_of(self.dialled),
                holding=Holding(self.leg.id, engine) if holding else None,
                not_before=not_before,
            )
        except Conflict:
            return None
        await store.note_call(self.pool, self.leg.id, expert_id=expert_id, request_id=view.id)
        return view.id

    async def _closed(
        self, expert_id: int, client_id: int, opening: datetime | None, now: datetime
    ) -> str:
        """Closed, paused or off: when the expert is back, and 1 to be called back then."""
        if opening is None:
            await self.leg.play(self.media(Prompt.EXPERT_NOT_TAKING_CALLS))
            return "declined"
        minutes = max(1, math.ceil((opening - now).total_seconds() / 60))
        amount = [f"number:{minutes}", self.media(Prompt.MINUTES)]
        if minutes >= 120:
            amount = [f"number:{round(minutes / 60)}", self.media(Prompt.HOURS)]
        key = await self.leg.collect(
            [
                self.media(Prompt.EXPERT_AVAILABLE_IN),
                *amount,
                self.media(Prompt.PRESS_1_CALLBACK_THEN),
            ],
            digits="1",
            timeout=self.settings.digit_timeout,
            tries=self.settings.prompt_tries,
        )
        if key != "1":
            await self.leg.play(self.media(Prompt.GOODBYE))
            return "closed"
        if await self._join(expert_id, client_id, holding=False, not_before=opening) is None:
            await self.leg.play(self.media(Prompt.ALREADY_IN_LINE))
            return "declined"
        await self.leg.play(self.media(Prompt.CALLBACK_CONFIRMED))
        return "callback"

    async def _hold(self, request_id: int, client_id: int) -> str:
        hold = self.hold = HoldLine(self.deps, HeldCall(self.leg, request_id))
        hold.attempts_seen = 0  # a new request: every expert call from now on is news

        async def redirect(holding: bool) -> int | None:
            # The expert declined: the next available expert of the number's category.
            view = await waiting.get(self.pool, hold.call.request_id)
            other = await self._first_available(exclude=view.expert_id)
            if other is None:
                return None
            return await self._join(other, client_id, holding=holding)

        hold.redirect = redirect
        log.info("holding.start", request_id=request_id)
        return await hold.run()
