"""A caller holding on the line for their expert.

    music on hold ── every IVR_HOLD_ANNOUNCE_SECONDS: "you are number N in line, estimated
    wait M minutes; press 1 to hang up and be called back, keeping your place"
      1 ............ callback: the request keeps its place, the caller is called back
      hang up ...... a missed call: callback promised within IVR_MISSED_CALLBACK_MINUTES
      expert missed  "your expert did not answer": 1 callback, else hold on
      expert took    the acceptance flow takes this channel as the client leg (``take``)
      refused/lost   "your expert cannot take your call": 1 callback from, or 2 hold for,
                     the next available expert of the same category; else goodbye

``HoldingCalls`` (held.py) is the meeting point of the two tasks that share a holding caller:
this one (owned by InboundCalls) and the request's acceptance flow (owned by the dispatcher).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from ivr_engine.calls import Leg
from ivr_engine.domain.holding import estimated_wait_minutes
from ivr_engine.domain.job import Job
from ivr_engine.domain.requests import RequestState
from ivr_engine.errors import AriError, Hangup
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.held import HeldCall
from ivr_engine.prompts import Prompt, sound_uri
from ivr_engine.store import holding as store
from ivr_engine.store.retry import TRANSIENT, durably

log = structlog.get_logger(__name__)
S = RequestState

ANNOUNCE_KEY_WAIT = 1.0  # seconds a key may follow the announcement


async def take_held(deps: FlowDeps, job: Job) -> Leg | None:
    """For the acceptance flow: the holding caller of ``job``, recorded as its client leg."""
    if job.holding_channel is None or deps.holding is None:
        return None
    leg = await deps.holding.take(job.request_id)
    if leg is None:
        return None
    await durably(lambda: store.held_attempt(deps.pool, job.request_id, leg.id), "held attempt")
    await durably(lambda: store.note_call(deps.pool, leg.id, bridged=True), "inbound bridged")
    return leg


class Outcome(enum.Enum):
    KEY = "key"
    TAKEN = "taken"
    WAKE = "wake"


class HoldLine:
    """One holding caller's time on the line, until they are bridged, choose a callback,
    hang up, or are told their expert cannot take the call."""

    def __init__(self, deps: FlowDeps, call: HeldCall) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.pool = deps.pool
        self.call = call
        self.leg = call.leg
        # The expert calls of the request the caller knows of (None: read it at start).
        self.attempts_seen: int | None = None
        self.bridged = False
        # Declined: a new request for the next available expert (holding: True), its id.
        self.redirect: Callable[[bool], Awaitable[int | None]] | None = None

    def media(self, prompt: Prompt) -> str:
        return sound_uri(prompt, self.settings.sound_prefix)

    async def run(self) -> str:
        """Returns the inbound call's outcome; the leg is hung up by the caller unless
        ``bridged`` (then the consultation owns it)."""
        registry = self.deps.holding
        assert registry is not None
        registry.add(self.call)
        try:
            if self.attempts_seen is None:  # adopted: what the expert was rung until now
                request_id, channel = self.call.request_id, self.leg.id
                place = await durably(lambda: store.place(self.pool, request_id, channel), "read")
                self.attempts_seen = place.attempts
            return await self._hold()
        except Hangup:
            await self._missed()
            return "abandoned"
        except asyncio.CancelledError:
            if not (self.bridged or self.call.taken.is_set() or registry.detached):
                await asyncio.shield(self._engine_stops())
            raise
        finally:
            registry.remove(self.call)
            if not registry.detached:
                await asyncio.shield(self._release())

    async def _hold(self) -> str:
        interval = self.settings.hold_announce_seconds
        await self.leg.start_moh()
        loop = asyncio.get_running_loop()
        announce_at = loop.time()
        while True:
            left = max(0.0, announce_at - loop.time())
            outcome, key = await self._race(self.leg.next_key(left))
            if outcome is Outcome.TAKEN:
                if (result := await self._handed_over()) is not None:
                    return result
                await self.leg.start_moh()
                continue
            if outcome is Outcome.WAKE:
                self.call.wake.clear()
                if (result := await self._look_again()) is not None:
                    return result
                continue
            if key == "1":
                return await self._callback()
            if key is None:  # time for the announcement
                announce_at = loop.time() + interval
                key = await self._announce()
                if key == "1":
                    return await self._callback()

    async def _race(self, step: object) -> tuple[Outcome, str | None]:
        """``step`` (a key wait or a prompt), unless the expert takes the call or the
        request's flow ends first: then its prompt is stopped in Asterisk (a cancelled play
        forgets its playback, which would go on and delay what the caller hears next)."""
        work = asyncio.ensure_future(step)  # type: ignore[call-overload]
        taken = asyncio.ensure_future(self.call.taken.wait())
        wake = asyncio.ensure_future(self.call.wake.wait())
        try:
            await asyncio.wait({work, taken, wake}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                await self._silence()
        finally:
            for t in (work, taken, wake):
                if not t.done():
                    t.cancel()
            await asyncio.gather(work, taken, wake, return_exceptions=True)
        if work.done() and not work.cancelled():
            return Outcome.KEY, work.result()
        if taken.done() and not taken.cancelled():
            return Outcome.TAKEN, None
        return Outcome.WAKE, None

    async def _announce(self) -> str | None:
        """Position and estimated wait; None (and music on) when PostgreSQL cannot say."""
        try:
            place = await store.place(self.pool, self.call.request_id, self.leg.id)
        except TRANSIENT as err:
            log.warning("holding.place_unknown", error=repr(err))
            return None
        if place.state not in (S.WAITING, S.RINGING_EXPERT):
            return None  # being connected: no position to tell
        minutes = estimated_wait_minutes(
            place.ahead,
            expert_busy=place.expert_busy,
            recent_seconds=place.recent_seconds,
            default_minutes=self.settings.default_consultation_minutes,
        )
        # One playback per item: Asterisk cannot stop a ``number:`` playback, so a number
        # in a list would keep the whole rest of the list going after the expert accepted.
        items = [
            self.media(Prompt.HOLD_POSITION),
            f"number:{place.ahead + 1}",
            self.media(Prompt.HOLD_IN_LINE),
            f"number:{minutes}",
            self.media(Prompt.MINUTES),
            self.media(Prompt.HOLD_PRESS_1),
        ]
        await self.leg.stop_moh()
        for item in items:
            outcome, key = await self._race(
                self.leg.collect([item], digits="1", timeout=0.01, tries=1)
            )
            if outcome is not Outcome.KEY or key == "1":
                break
        else:
            outcome, key = await self._race(self.leg.next_key(ANNOUNCE_KEY_WAIT))
        if outcome is Outcome.WAKE:
            self.call.wake.set()  # handled by the loop
        if outcome is not Outcome.KEY:
            return None  # taken or woken: the loop sees it at once
        await self.leg.start_moh()
        return key

    async def _silence(self) -> None:
        """Stop what plays to the caller; a ``number:`` Asterisk refuses to stop ends soon."""
        try:
            await self.leg.stop_playbacks()
        except AriError as err:
            log.info("holding.prompt_not_stopped", error=str(err))

    async def _handed_over(self) -> str | None:
        """The expert accepted: stay silent while the acceptance flow connects the caller,
        then either the consultation owns the call, or the caller holds again."""
        await self._silence()
        await self.leg.stop_moh()
        self.call.quiet.set()
        gone = asyncio.ensure_future(self.leg.wait_hangup())
        wake = asyncio.ensure_future(self.call.wake.wait())
        try:
            await asyncio.wait({gone, wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (gone, wake):
                t.cancel()
            await asyncio.gather(gone, wake, return_exceptions=True)
        request_id, channel = self.call.request_id, self.leg.id
        place = await durably(lambda: store.place(self.pool, request_id, channel), "read")
        if place.state in (S.CONNECTED, S.COMPLETED):
            # The consultation owns the call: its leg's events must reach it until its flow
            # has ended and billed (then the dispatcher wakes us).
            self.bridged = True
            await self.call.wake.wait()
            return "bridged"
        if self.leg.is_gone:
            raise Hangup(self.leg.id, self.leg.hangup_cause, self.leg.hangup_text)
        self.call.wake.clear()
        self.call.taken.clear()
        self.call.quiet.clear()
        return await self._look_again()

    async def _look_again(self) -> str | None:
        """The request's call ended without this caller: why, and what they may do now."""
        place = await durably(
            lambda: store.place(self.pool, self.call.request_id, self.leg.id), "read request"
        )
        if place.state is S.WAITING:
            missed = self.attempts_seen is not None and place.attempts > self.attempts_seen
            self.attempts_seen = place.attempts
            if missed:
                await self.leg.stop_moh()
                key = await self.leg.collect(
                    [self.media(Prompt.HOLD_EXPERT_NO_ANSWER)],
                    digits="1",
                    timeout=self.settings.digit_timeout,
                    tries=1,
                )
                if key == "1":
                    return await self._callback()
                await self.leg.start_moh()
            return None
        if place.state.is_active:
            return None
        # Refused, lost or failed while the caller held.
        await self.leg.stop_moh()
        key = await self.leg.collect(
            [self.media(Prompt.HOLD_EXPERT_DECLINED)],
            digits="12",
            timeout=self.settings.digit_timeout,
            tries=self.settings.prompt_tries,
            invalid=[self.media(Prompt.INVALID_KEY)],
        )
        if key is None or self.redirect is None:
            await self.leg.play(self.media(Prompt.GOODBYE))
            return "declined"
        await self._release()
        request_id = await self.redirect(key == "2")
        if request_id is None:
            await self.leg.play(self.media(Prompt.NOBODY_AVAILABLE))
            return "declined"
        registry = self.deps.holding
        assert registry is not None
        registry.remove(self.call)
        self.call.request_id = request_id
        registry.add(self.call)
        self.attempts_seen = 0
        if key == "1":
            await self.leg.play(self.media(Prompt.CALLBACK_CONFIRMED))
            return "callback"
        await self.leg.start_moh()
        return None

    async def _callback(self) -> str:
        """Key 1: hang up and be called back, keeping the place."""
        request_id, channel = self.call.request_id, self.leg.id
        await durably(
            lambda: store.stop_holding(self.pool, request_id, channel, missed_minutes=None),
            "callback chosen",
        )
        await self.leg.stop_moh()
        await self.leg.play(self.media(Prompt.CALLBACK_CONFIRMED))
        return "callback"

    async def _release(self) -> None:
        """The channel is no longer this request's (whatever became of the request)."""
        request_id, channel = self.call.request_id, self.leg.id
        await durably(
            lambda: store.stop_holding(self.pool, request_id, channel, missed_minutes=None),
            "holding released",
        )

    async def _missed(self) -> None:
        """The caller hung up while holding: a missed call, called back within the delay."""
        request_id, channel = self.call.request_id, self.leg.id
        minutes = self.settings.missed_callback_minutes
        at = datetime.now(UTC)  # the promise counts from the hang-up, not from a late write
        if await durably(
            lambda: store.stop_holding(
                self.pool, request_id, channel, missed_minutes=minutes, at=at
            ),
            "missed call",
        ):
            log.info("holding.missed_call", request_id=request_id)

    async def _engine_stops(self) -> None:
        """This engine stops while the caller holds: they are told, the call becomes a
        callback at their place (another engine calls them back)."""
        try:
            async with asyncio.timeout(8):
                await self.leg.stop_moh()
                await self.leg.play(self.media(Prompt.HOLD_ENDED))
        except Exception as err:  # gone, or the prompt lost: the callback is what matters
            log.info("holding.goodbye_not_played", error=repr(err))
        await self._missed()
