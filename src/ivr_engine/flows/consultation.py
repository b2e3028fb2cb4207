"""A bridged consultation, watched until a party hangs up, then billed.

This is the part of a call that outlives the engine: the acceptance flow runs it right after
the bridge, and an engine that adopts a consultation left by a stopped or dead engine runs it
on the legs it re-attached. A detached watch (the engine is stopping) leaves the bridge and
both phones up for the next engine; nothing else ever hangs up a paid conversation early,
except the longest length allowed (``max_consultation_minutes``, with a warning a minute
before).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from ivr_engine.aio import finish
from ivr_engine.calls import LOST_WHILE_DISCONNECTED, Leg
from ivr_engine.domain.media import media_stopped_at
from ivr_engine.errors import AriError, AriUnavailable
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.prompts import Prompt, sound_uri
from ivr_engine.store import cel, consultations
from ivr_engine.store.attempts import AttemptEnd
from ivr_engine.store.retry import durably

log = structlog.get_logger(__name__)

WARNING_BEFORE = 60.0  # seconds: the warning before the longest consultation allowed ends


@dataclass
class Bridged:
    request_id: int
    bridge_id: str
    expert: Leg
    client: Leg
    start: datetime
    expert_choice: str | None  # what the expert pressed to accept, for the attempt row


class ConsultationWatch:
    def __init__(self, deps: FlowDeps, call: Bridged) -> None:
        self.deps = deps
        self.call = call
        self.detached = False

    async def run(self) -> None:
        """Wait for the first hangup (or the time limit), end the other leg, bill."""
        call = self.call
        try:
            first = await self._first_hangup()
            if first is None:  # the time limit
                end = datetime.now(UTC)
                ended_by = "time_limit"
                for leg in (call.expert, call.client):
                    await leg.hangup()
            else:
                end = await self._real_end(first)
                ended_by = "expert" if first is call.expert else "client"
                other = call.client if first is call.expert else call.expert
                await other.hangup()
            for leg in (call.expert, call.client):
                try:
                    await leg.wait_hangup(timeout=10)
                except TimeoutError:
                    log.warning("call.hangup_unconfirmed", channel_id=leg.id)
            # With the bill, in one statement: `completed` means every row of the
            # consultation is final.
            legs = [
                await self.attempt_end(call.expert, "completed", call.expert_choice),
                await self.attempt_end(call.client, "completed"),
            ]
            bill = await durably(
                lambda: consultations.finish(
                    self.deps.pool,
                    call.request_id,
                    end=end,
                    ended_by=ended_by,
                    attempts_ended=legs,
                ),
                "consultation end",
            )
            log.info(
                "consultation.ended",
                ended_by=ended_by,
                billed_seconds=bill.billed_seconds if bill else None,
            )
        finally:
            if self.detached:
                self.deps.calls.forget_bridge(call.bridge_id)
            else:
                await finish(self.deps.calls.destroy_bridge(call.bridge_id))
            for leg in (call.expert, call.client):
                self.deps.calls.forget(leg)

    async def _real_end(self, first: Leg) -> datetime:
        """When the consultation ended: the hangup Asterisk reported, or, when the engine
        only noticed it after its event socket came back, what Asterisk recorded (CEL)."""
        call = self.call
        await first.destroyed(timeout=2)  # ChannelDestroyed carries the final cause
        if first.hangup_text != LOST_WHILE_DISCONNECTED and first.ended_at is not None:
            # A leg Asterisk hung up for lack of media is billed until its media stopped.
            rtp_timeout = self.deps.settings.rtp_timeout
            return max(
                call.start, media_stopped_at(first.ended_at, first.hangup_cause, rtp_timeout)
            )
        recorded = await durably(
            lambda: cel.bridge_end(self.deps.cel, [call.expert.id, call.client.id], call.start),
            "read CEL",
        )
        if recorded is not None:
            return recorded
        seen = await durably(
            lambda: consultations.seen_at(self.deps.pool, call.request_id), "read seen_at"
        )
        log.warning("consultation.end_estimated", seen_at=str(seen))
        return seen or first.ended_at or datetime.now(UTC)

    async def attempt_end(self, leg: Leg, outcome: str, choice: str | None = None) -> AttemptEnd:
        """The end of ``leg``'s attempt row, once Asterisk has said how it ended, for
        ``consultations.finish`` to write with the bill."""
        if leg.is_gone:
            await leg.destroyed(timeout=2)
        return AttemptEnd(
            leg.id,
            outcome,
            ended_at=leg.ended_at,
            cause=leg.hangup_cause,
            cause_text=leg.hangup_text,
            dtmf="".join(leg.dtmf_log),
            choice=choice,
        )

    async def _first_hangup(self) -> Leg | None:
        """The leg that hung up first; None when the consultation reached its time limit."""
        call = self.call
        limit = self.deps.settings.max_consultation_minutes * 60
        elapsed = (datetime.now(UTC) - call.start).total_seconds()
        waits = {
            asyncio.ensure_future(call.expert.wait_hangup()): call.expert,
            asyncio.ensure_future(call.client.wait_hangup()): call.client,
        }
        timer = asyncio.ensure_future(self._time_limit(limit - elapsed))
        try:
            done, _ = await asyncio.wait({*waits, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*waits, timer):
                task.cancel()
            await asyncio.gather(*waits, timer, return_exceptions=True)
        for task, leg in waits.items():
            if task in done:
                return leg
        return None

    async def _time_limit(self, remaining: float) -> None:
        if remaining > WARNING_BEFORE:
            await asyncio.sleep(remaining - WARNING_BEFORE)
            remaining = WARNING_BEFORE
        media = sound_uri(Prompt.CONSULTATION_ENDING, self.deps.settings.sound_prefix)
        try:
            await self.deps.calls.play_to_bridge(
                self.call.bridge_id, media, self.call.expert.language
            )
        except (AriError, AriUnavailable) as err:
            log.warning("consultation.warning_not_played", error=str(err))
        await asyncio.sleep(max(0.0, remaining))
        log.info("consultation.time_limit")
