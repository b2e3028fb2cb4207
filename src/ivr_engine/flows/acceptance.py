"""The expert-acceptance flow: ring the expert, offer the request, ring the client, bridge.

Read it top to bottom: it is the phone call. Every outcome ends in one state move of the
request (see ivr_engine.domain.requests); legs are hung up in ``finally`` whatever happens.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from ivr_engine.aio import finish
from ivr_engine.calls import Leg
from ivr_engine.config import Settings
from ivr_engine.domain.job import Job
from ivr_engine.domain.money import Tariff
from ivr_engine.domain.requests import RequestState
from ivr_engine.domain.routing import dial_string
from ivr_engine.errors import Hangup, OriginateFailed
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.prompts import Prompt, rate_media, sound_uri
from ivr_engine.store import attempts, consultations, waiting

log = structlog.get_logger(__name__)
S = RequestState

BUSY_CAUSES = {17}  # Q.850 user busy


class AcceptanceFlow:
    def __init__(self, deps: FlowDeps, job: Job) -> None:
        self.deps = deps
        self.job = job
        self.settings = deps.settings
        self.pool = deps.pool
        self.calls = deps.calls
        self.legs: list[Leg] = []
        self.ended: set[str] = set()  # channel ids whose attempt row is final

    def media(self, prompt: Prompt) -> str:
        return sound_uri(prompt, self.settings.sound_prefix)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await finish(self._cleanup())

    async def _run(self) -> None:
        job = self.job
        expert = await self._dial("expert", "offer", job.expert_phone, job.expert_language)
        if (err := await self._await_answer(expert)) is not None:
            await self._expert_missed("busy" if err.cause in BUSY_CAUSES else "no_answer")
            return

        choice = "1"
        try:
            if job.acceptance_ivr:
                choice = await self._offer(expert) or ""
        except Hangup:
            choice = ""
        if choice == "":
            await self._say_and_hangup(expert, Prompt.NO_CHOICE_GOODBYE)
            await self._end_attempt(expert, "no_choice")
            await self._expert_missed("no_choice")
            return
        if choice == "3":
            await self._move(S.RINGING_EXPERT, S.REFUSED, "expert_refused")
            await self._say_and_hangup(expert, Prompt.REFUSED_GOODBYE)
            await self._end_attempt(expert, "refused", choice="3")
            await self._tell_client_declined()
            return
        await self._connect(expert)

    async def _offer(self, expert: Leg) -> str | None:
        job = self.job
        offer = [
            self.media(Prompt.OFFER_REQUEST_FROM),
            f"characters:{_spellable(job.client_alias)}",
            *rate_media(job.rate, self.settings.sound_prefix),
        ]
        return await expert.collect(
            [*offer, self.media(Prompt.ACCEPT_OR_REFUSE)],
            digits="13",
            timeout=self.settings.digit_timeout,
            tries=self.settings.prompt_tries,
            invalid=[self.media(Prompt.INVALID_KEY)],
        )

    async def _connect(self, expert: Leg) -> None:
        job = self.job
        await self._move(S.RINGING_EXPERT, S.RINGING_CLIENT, "expert_accepted")
        try:
            if job.acceptance_ivr:
                await expert.play(self.media(Prompt.CONNECTING_YOU))
            await expert.start_moh()
        except Hangup:
            await self._end_attempt(expert, "hung_up_before_bridge", choice="1")
            await self._move(S.RINGING_CLIENT, S.LOST, "expert_hung_up")
            return

        client = await self._dial("client", "connect", job.client_phone, job.client_language)
        answered = asyncio.ensure_future(client.answered(timeout=self.settings.ring_timeout + 10))
        expert_gone = asyncio.ensure_future(expert.wait_hangup())
        try:
            await asyncio.wait({answered, expert_gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            expert_gone.cancel()
        if not answered.done():
            # The expert left while the client's phone rang: stop ringing it.
            answered.cancel()
            await client.hangup()
            await self._move(S.RINGING_CLIENT, S.LOST, "expert_hung_up")
            await self._end_attempt(expert, "hung_up_before_bridge", choice="1")
            await self._end_attempt(client, "cancelled")
            return
        try:
            answered.result()
        except OriginateFailed as err:
            await self._attempt_failed(client, err)
            await self._move(S.RINGING_CLIENT, S.CLIENT_UNREACHABLE, err.cause_txt or "no_answer")
            await expert.stop_moh()
            await self._say_and_hangup(expert, Prompt.CLIENT_UNREACHABLE_EXPERT)
            await self._end_attempt(expert, "client_unreachable", choice="1")
            return
        await attempts.answered(self.pool, client.id, client.answered_at or _now())

        try:
            await client.play(self.media(Prompt.CLIENT_EXPERT_ACCEPTED))
        except Hangup:
            await self._move(S.RINGING_CLIENT, S.LOST, "client_hung_up")
            await self._end_attempt(client, "hung_up_before_bridge")
            await expert.stop_moh()
            await self._say_and_hangup(expert, Prompt.CLIENT_UNREACHABLE_EXPERT)
            await self._end_attempt(expert, "client_hung_up_before_bridge", choice="1")
            return
        if expert.is_gone:
            await self._move(S.RINGING_CLIENT, S.LOST, "expert_hung_up")
            await self._end_attempt(expert, "hung_up_before_bridge", choice="1")
            await self._say_and_hangup(client, Prompt.CLIENT_EXPERT_DECLINED)
            await self._end_attempt(client, "expert_hung_up_before_bridge")
            return
        await self._bridge(expert, client)

    async def _bridge(self, expert: Leg, client: Leg) -> None:
        job = self.job
        bridge_id = f"ivr-{job.request_id}-bridge"
        await self.calls.create_bridge(bridge_id)
        try:
            await expert.stop_moh()
            await self.calls.add_to_bridge(bridge_id, expert, client)
            start = await self.calls.wait_bridged(bridge_id, 2, timeout=10)
            await consultations.begin(
                self.pool,
                job,
                tariff_for(job, self.settings),
                bridge_id=bridge_id,
                expert_channel=expert.id,
                client_channel=client.id,
                start=start,
            )
            log.info("consultation.started", bridge_id=bridge_id)
            first = await _first_hangup(expert, client)
            end = first.ended_at or _now()
            ended_by = "expert" if first is expert else "client"
            other = client if first is expert else expert
            await other.hangup()
            try:
                await other.wait_hangup(timeout=10)
            except TimeoutError:
                log.warning("call.hangup_unconfirmed", channel_id=other.id)
            await self._end_attempt(expert, "completed", choice="1" if job.acceptance_ivr else None)
            await self._end_attempt(client, "completed")
            # Last: `completed` means every row of the consultation is final.
            bill = await consultations.finish(self.pool, job.request_id, end=end, ended_by=ended_by)
            seconds = bill.billed_seconds if bill else None
            log.info("consultation.ended", ended_by=ended_by, billed_seconds=seconds)
        finally:
            await finish(self.calls.destroy_bridge(bridge_id))

    # -- pieces --------------------------------------------------------------------------
    async def _move(self, current: RequestState, target: RequestState, reason: str) -> None:
        await waiting.move(self.pool, self.job.request_id, current, target, reason)

    async def _dial(self, leg: str, purpose: str, number: str, language: str) -> Leg:
        endpoint = dial_string(number, self.settings.dial_routes)
        channel_id = await attempts.new(
            self.pool, self.job.request_id, leg=leg, purpose=purpose, dial_string=endpoint
        )
        structlog.contextvars.bind_contextvars(**{f"{leg}_channel": channel_id})
        log.info("call.dialing", leg=leg, purpose=purpose, endpoint=endpoint)
        try:
            call = await self.calls.originate(
                channel_id,
                endpoint,
                language=language,
                ring_timeout=self.settings.ring_timeout,
                caller_id=self.settings.caller_id,
            )
        except OriginateFailed:
            # A leg object that has already failed keeps the flow's code straight.
            call = self.calls.adopt(channel_id, language)
            call._on_gone(None, "originate refused", _now())
        self.legs.append(call)
        return call

    async def _await_answer(self, leg: Leg) -> OriginateFailed | None:
        """Wait for ``leg`` to answer and record it; if it never does, the (recorded) failure."""
        try:
            await leg.answered(timeout=self.settings.ring_timeout + 10)
        except OriginateFailed as err:
            await self._attempt_failed(leg, err)
            return err
        await attempts.answered(self.pool, leg.id, leg.answered_at or _now())
        return None

    async def _tell_client_declined(self) -> None:
        job = self.job
        client = await self._dial("client", "notify_refused", job.client_phone, job.client_language)
        if await self._await_answer(client) is not None:
            return
        await self._say_and_hangup(client, Prompt.CLIENT_EXPERT_DECLINED)
        await self._end_attempt(client, "told_declined")

    async def _say_and_hangup(self, leg: Leg, prompt: Prompt) -> None:
        try:
            await leg.play(self.media(prompt))
        except Hangup:
            pass
        await leg.hangup()

    async def _expert_missed(self, reason: str) -> None:
        view = await waiting.missed(
            self.pool,
            self.job.request_id,
            retry_delay=self.settings.retry_delay,
            max_attempts=self.settings.max_attempts,
            reason=reason,
        )
        log.info("request.expert_missed", reason=reason, state=view.state.value)

    async def _attempt_failed(self, leg: Leg, err: OriginateFailed) -> None:
        self.ended.add(leg.id)
        await leg.destroyed(timeout=2)
        outcome = "busy" if err.cause in BUSY_CAUSES else "no_answer"
        if err.cause_txt.startswith("originate refused"):
            outcome = "failed"
        await attempts.ended(
            self.pool,
            leg.id,
            outcome=outcome,
            ended_at=leg.ended_at,
            cause=err.cause,
            cause_text=err.cause_txt,
            dtmf="".join(leg.dtmf_log),
        )

    async def _end_attempt(self, leg: Leg, outcome: str, choice: str | None = None) -> None:
        self.ended.add(leg.id)
        if leg.is_gone:
            await leg.destroyed(timeout=2)
        await attempts.ended(
            self.pool,
            leg.id,
            outcome=outcome,
            ended_at=leg.ended_at,
            cause=leg.hangup_cause,
            cause_text=leg.hangup_text,
            dtmf="".join(leg.dtmf_log),
            choice=choice,
        )

    async def _cleanup(self) -> None:
        for leg in self.legs:
            try:
                await leg.hangup()
                if leg.id not in self.ended:
                    await self._end_attempt(leg, "cancelled")
            except Exception:
                log.exception("call.cleanup_failed", channel_id=leg.id)
            self.calls.forget(leg)


async def _first_hangup(a: Leg, b: Leg) -> Leg:
    wa = asyncio.ensure_future(a.wait_hangup())
    wb = asyncio.ensure_future(b.wait_hangup())
    try:
        done, _ = await asyncio.wait({wa, wb}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (wa, wb):
            t.cancel()
        await asyncio.gather(wa, wb, return_exceptions=True)
    return a if wa in done else b


def tariff_for(job: Job, settings: Settings) -> Tariff:
    """What this consultation will cost, frozen now: later changes never rewrite it."""
    return settings.tariff(rate=job.rate, category=job.category, expert_number=job.expert_phone)


def _spellable(alias: str) -> str:
    return "".join(ch for ch in alias if ch.isalnum())[:20] or "client"


def _now() -> datetime:
    return datetime.now(UTC)
