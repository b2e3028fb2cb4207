"""Adopting the calls of an engine that stopped or died.

Asterisk keeps every call up when an engine goes away (channels stay in Stasis and in their
bridges), and PostgreSQL says which requests that engine was running. For each request whose
owner stopped cleanly or let its lease expire, one engine takes ownership (a compare-and-set,
so two survivors never both adopt it) and then, from what Asterisk shows now:

- a consultation whose bridge still holds both phones is watched again, and ended and billed
  when a party hangs up, as if nothing had happened;
- a consultation that ended while nobody watched is billed until the end Asterisk recorded
  (CEL), or when that record is missing until the last time an engine saw the bridge up
  (``seen_at``), never until "now"; the phone left behind is hung up;
- a call that had not reached its bridge is ended politely, and its request goes back to the
  head of the waiting list without counting the attempt.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import structlog

from ivr_engine.calls import CallControl, Leg
from ivr_engine.dispatcher import Dispatcher
from ivr_engine.domain.requests import RequestState
from ivr_engine.errors import AriError, AriUnavailable, Conflict
from ivr_engine.flows.consultation import Bridged, ConsultationWatch
from ivr_engine.flows.legs import INTERRUPT_PROMPT_BUDGET
from ivr_engine.prompts import Prompt, sound_uri
from ivr_engine.store import attempts, cel, consultations, engines, waiting
from ivr_engine.store.engines import Abandoned
from ivr_engine.store.retry import TRANSIENT

log = structlog.get_logger(__name__)
S = RequestState

ADOPT_CONCURRENCY = 10  # abandoned requests handled at once by one recovery pass


class Recovery:
    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        engine_id: uuid.UUID,
        lease: float,
        cel_pool: asyncpg.Pool | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.deps = dispatcher.deps
        self.calls: CallControl = dispatcher.deps.calls
        self.pool = dispatcher.pool
        self.engine_id = engine_id
        self.lease = lease
        self.cel_pool = cel_pool or dispatcher.deps.cel
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[int] | None = None
        self.passes = 0  # finished recovery passes (tests wait on it)

    def kick(self, *, stale_ok: bool) -> None:
        """Run a pass in the background: it plays prompts and waits for ARI events, so it must
        not run inside the WebSocket's own connected hook."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._pass(stale_ok), name="recovery")

    async def _pass(self, stale_ok: bool) -> int:
        try:
            return await self.run(stale_ok=stale_ok)
        except TRANSIENT as err:
            log.warning("recovery.deferred", error=repr(err))
            return 0
        except Exception:
            log.exception("recovery.failed")
            return 0
        finally:
            self.passes += 1

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run(self, *, stale_ok: bool) -> int:
        """Adopt or end what no live engine runs; returns how many requests were taken.

        Items are handled side by side (a polite goodbye takes seconds each), a few at a
        time, and none is taken once this engine is draining."""
        async with self._lock:
            found = await engines.abandoned(
                self.pool, self.engine_id, self.lease, stale_ok=stale_ok
            )
            limit = asyncio.Semaphore(ADOPT_CONCURRENCY)
            results = await asyncio.gather(
                *(self._one(item, limit) for item in found), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    log.error("request.adopt_crashed", error=repr(result))
            taken = sum(1 for result in results if result is True)
            if taken:
                self.dispatcher.poke()
            return taken

    async def _one(self, item: Abandoned, limit: asyncio.Semaphore) -> bool:
        async with limit:
            if self.dispatcher.draining:
                return False
            if not await engines.take(
                self.pool, item.request_id, item.owner, self.engine_id, self.lease
            ):
                return False
            log.warning("request.adopting", request_id=item.request_id, state=item.state.value)
            try:
                if item.state is S.CONNECTED and item.bridge_id is not None:
                    await self._consultation(item)
                else:
                    await self._interrupted(item)
            except (AriError, AriUnavailable) as err:
                log.warning("request.adopt_failed", request_id=item.request_id, error=str(err))
            return True

    async def _consultation(self, item: Abandoned) -> None:
        assert item.bridge_id and item.expert_channel and item.client_channel
        assert item.bridge_start is not None
        # Legs first, so that an event arriving once subscribed is routed; then ask.
        expert = self.calls.adopt(item.expert_channel, item.expert_language)
        client = self.calls.adopt(item.client_channel, item.expert_language)
        await self.calls.subscribe(channels=[expert.id, client.id], bridges=[item.bridge_id])
        present = await self.calls.bridge_channels(item.bridge_id) or []
        call = Bridged(
            request_id=item.request_id,
            bridge_id=item.bridge_id,
            expert=expert,
            client=client,
            start=item.bridge_start,
            expert_choice="1" if item.acceptance_ivr else None,
        )
        if expert.id in present and client.id in present and not (expert.is_gone or client.is_gone):
            log.info("consultation.adopted", request_id=item.request_id)
            self.dispatcher.watch(item.request_id, ConsultationWatch(self.deps, call))
            return
        # It ended while no engine watched: bill until Asterisk's own record of the end.
        end = await cel.bridge_end(self.cel_pool, [expert.id, client.id], item.bridge_start)
        ended_by = "unwatched"
        if end is None:
            end = item.seen_at or item.bridge_start
            ended_by = "unwatched_estimated"
            log.warning("consultation.end_estimated", request_id=item.request_id, end=str(end))
        for leg in (expert, client):
            await leg.hangup()
            if leg.ended_at is None or leg.ended_at > end:
                leg.ended_at = end
        watch = ConsultationWatch(self.deps, call)
        legs = [
            await watch.attempt_end(expert, "completed", call.expert_choice),
            await watch.attempt_end(client, "completed"),
        ]
        try:
            await consultations.finish(
                self.pool, item.request_id, end=end, ended_by=ended_by, attempts_ended=legs
            )
        except Conflict:
            pass
        await self.calls.destroy_bridge(item.bridge_id)
        for leg in (expert, client):
            self.calls.forget(leg)
        log.info("consultation.closed_after_the_fact", request_id=item.request_id)

    async def _interrupted(self, item: Abandoned) -> None:
        """A call before its bridge: sorry, goodbye, and back to the head of the list."""
        legs = [self.calls.adopt(ch, item.expert_language) for ch in item.channels]
        await self.calls.subscribe(channels=[leg.id for leg in legs], bridges=[])
        await asyncio.gather(*(self._say_sorry(leg) for leg in legs))
        # A bridge made just before the engine stopped would block the retry's own.
        await self.calls.destroy_bridge(f"ivr-{item.request_id}-bridge")
        for leg in legs:
            await attempts.ended(
                self.pool,
                leg.id,
                outcome="interrupted",
                ended_at=leg.ended_at,
                cause=leg.hangup_cause,
                cause_text=leg.hangup_text,
            )
            self.calls.forget(leg)
        try:
            await waiting.interrupted(self.pool, item.request_id, item.state)
        except Conflict:
            pass

    async def _say_sorry(self, leg: Leg) -> None:
        if await self.calls.channel_state(leg.id) == "Up":
            media = sound_uri(Prompt.CALL_INTERRUPTED, self.deps.settings.sound_prefix)
            try:
                async with asyncio.timeout(INTERRUPT_PROMPT_BUDGET):
                    await leg.play(media)
            except Exception as err:  # gone meanwhile, or the prompt is lost: hang up anyway
                log.info("call.sorry_not_played", channel_id=leg.id, error=repr(err))
        await leg.hangup()
