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
from ivr_engine.errors import AriError, Hangup, OriginateFailed
from ivr_engine.flows.consultation import Bridged, ConsultationWatch
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.prompts import Prompt, rate_media, sound_uri
from ivr_engine.store import attempts, consultations, waiting
from ivr_engine.store.retry import durably

log = structlog.get_logger(__name__)
S = RequestState

BUSY_CAUSES = {17}  # Q.850 user busy
INTERRUPT_PROMPT_BUDGET = 8.0  # seconds for "sorry, we have to end this call" on a stop


class AcceptanceFlow:
    def __init__(self, deps: FlowDeps, job: Job) -> None:
        self.deps = deps
        self.job = job
        self.settings = deps.settings
        self.pool = deps.pool
        self.calls = deps.calls
        self.legs: list[Leg] = []
        self.watch: ConsultationWatch | None = None
        self.detached = False  # the engine stops and leaves the bridged call up
        self.interrupted = False  # the engine stops before the bridge
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
        connections = self.calls.ari.connections
        try:
            if job.acceptance_ivr:
                choice = await self._offer(expert) or ""
        except Hangup:
            choice = ""
        if choice == "" and self.calls.ari.connections != connections:
            # The event socket dropped during the offer: a key may have been pressed and lost.
            # The engine's gap is not the expert's missed call.
            await self._engine_gap(expert)
            return
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
        await self._answered(client)

        try:
            await client.play(self.media(Prompt.CLIENT_EXPERT_ACCEPTED))
        except Hangup:
            await self._client_left(expert, client)
            return
        if expert.is_gone:
            await self._expert_left(expert, client)
            return
        await self._bridge(expert, client)

    async def _engine_gap(self, expert: Leg) -> None:
        log.warning("request.engine_gap")
        await self._say_sorry()
        await expert.hangup()
        await self._end_attempt(expert, "interrupted")
        request_id = self.job.request_id
        await durably(
            lambda: waiting.interrupted(self.pool, request_id, S.RINGING_EXPERT),
            "request interrupted",
        )

    async def _client_left(self, expert: Leg, client: Leg) -> None:
        """The client hung up after answering, before the bridge: lost, nobody blamed."""
        await self._move(S.RINGING_CLIENT, S.LOST, "client_hung_up")
        await self._end_attempt(client, "hung_up_before_bridge")
        await expert.stop_moh()
        await self._say_and_hangup(expert, Prompt.CLIENT_UNREACHABLE_EXPERT)
        await self._end_attempt(expert, "client_hung_up_before_bridge", choice="1")

    async def _expert_left(self, expert: Leg, client: Leg) -> None:
        await self._move(S.RINGING_CLIENT, S.LOST, "expert_hung_up")
        await self._end_attempt(expert, "hung_up_before_bridge", choice="1")
        await self._say_and_hangup(client, Prompt.CLIENT_EXPERT_DECLINED)
        await self._end_attempt(client, "expert_hung_up_before_bridge")

    async def _bridge(self, expert: Leg, client: Leg) -> None:
        job = self.job
        bridge_id = f"ivr-{job.request_id}-bridge"
        await self.calls.create_bridge(bridge_id)
        try:
            await expert.stop_moh()
            try:
                await self.calls.add_to_bridge(bridge_id, expert, client)
            except AriError:
                # A party hung up as the bridge was made: Asterisk no longer has its channel.
                gone = await self._gone_one(expert, client)
                if gone is None:
                    raise
                await finish(self.calls.destroy_bridge(bridge_id))
                await (self._client_left if gone is client else self._expert_left)(expert, client)
                return
            start = await self.calls.wait_bridged(bridge_id, 2, timeout=10)
            tariff = tariff_for(job, self.settings)
            await durably(
                lambda: consultations.begin(
                    self.pool,
                    job,
                    tariff,
                    bridge_id=bridge_id,
                    expert_channel=expert.id,
                    client_channel=client.id,
                    start=start,
                ),
                "consultation start",
            )
        except BaseException:
            await finish(self.calls.destroy_bridge(bridge_id))
            raise
        log.info("consultation.started", bridge_id=bridge_id)
        call = Bridged(
            request_id=job.request_id,
            bridge_id=bridge_id,
            expert=expert,
            client=client,
            start=start,
            expert_choice="1" if job.acceptance_ivr else None,
        )
        self.watch = ConsultationWatch(self.deps, call)
        self.ended.update((expert.id, client.id))  # the watch ends their attempt rows
        await self.watch.run()

    def detach(self) -> bool:
        """The engine is stopping: if the consultation is bridged, leave it up for the next
        engine (no hangup, no bridge destroyed, no state change). False before the bridge."""
        if self.watch is None:
            return False
        self.watch.detached = True
        self.detached = True
        return True

    def interrupt(self) -> None:
        """The engine is stopping before the bridge: say so to whoever answered, hang up."""
        self.interrupted = True

    # -- pieces --------------------------------------------------------------------------
    async def _gone_one(self, expert: Leg, client: Leg) -> Leg | None:
        """Which of the two has hung up (asking Asterisk, its event may be on its way)."""
        for leg in (client, expert):
            if leg.is_gone or await self.calls.channel_state(leg.id) is None:
                await leg.destroyed(timeout=1)
                return leg
        return None

    async def _move(self, current: RequestState, target: RequestState, reason: str) -> None:
        # PostgreSQL away: the call carries on (the caller hears music or a prompt) while the
        # move waits; a real conflict is raised at once.
        request_id = self.job.request_id
        await durably(
            lambda: waiting.move(self.pool, request_id, current, target, reason), "state move"
        )

    async def _dial(self, leg: str, purpose: str, number: str, language: str) -> Leg:
        endpoint = dial_string(number, self.settings.dial_routes)
        request_id = self.job.request_id
        channel_id = await durably(
            lambda: attempts.new(
                self.pool, request_id, leg=leg, purpose=purpose, dial_string=endpoint
            ),
            "attempt intent",
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
        await self._answered(leg)
        return None

    async def _answered(self, leg: Leg) -> None:
        at = leg.answered_at or _now()
        await durably(lambda: attempts.answered(self.pool, leg.id, at), "attempt answered")

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
        s = self.settings
        view = await durably(
            lambda: waiting.missed(
                self.pool,
                self.job.request_id,
                retry_delay=s.retry_delay,
                max_attempts=s.max_attempts,
                reason=reason,
            ),
            "expert missed",
        )
        log.info("request.expert_missed", reason=reason, state=view.state.value)

    async def _attempt_failed(self, leg: Leg, err: OriginateFailed) -> None:
        self.ended.add(leg.id)
        await leg.destroyed(timeout=2)
        outcome = "busy" if err.cause in BUSY_CAUSES else "no_answer"
        if err.cause_txt.startswith("originate refused"):
            outcome = "failed"
        await self._record_end(leg, outcome, cause=err.cause, cause_text=err.cause_txt)

    async def _end_attempt(self, leg: Leg, outcome: str, choice: str | None = None) -> None:
        self.ended.add(leg.id)
        if leg.is_gone:
            await leg.destroyed(timeout=2)
        await self._record_end(
            leg, outcome, cause=leg.hangup_cause, cause_text=leg.hangup_text, choice=choice
        )

    async def _record_end(
        self,
        leg: Leg,
        outcome: str,
        *,
        cause: int | None,
        cause_text: str,
        choice: str | None = None,
    ) -> None:
        ended_at, dtmf = leg.ended_at, "".join(leg.dtmf_log)
        await durably(
            lambda: attempts.ended(
                self.pool,
                leg.id,
                outcome=outcome,
                ended_at=ended_at,
                cause=cause,
                cause_text=cause_text,
                dtmf=dtmf,
                choice=choice,
            ),
            "attempt end",
        )

    async def _cleanup(self) -> None:
        if self.detached:  # the call stays up: the next engine adopts it
            for leg in self.legs:
                self.calls.forget(leg)
            return
        if self.interrupted:
            await self._say_sorry()
        for leg in self.legs:
            try:
                await leg.hangup()
                if leg.id not in self.ended:
                    await self._end_attempt(leg, "interrupted" if self.interrupted else "cancelled")
            except Exception:
                log.exception("call.cleanup_failed", channel_id=leg.id)
            self.calls.forget(leg)

    async def _say_sorry(self) -> None:
        """Whoever is on the line hears why the call ends (bounded: the engine is stopping)."""
        live = [leg for leg in self.legs if leg.is_answered and not leg.is_gone]
        plays = [leg.play(self.media(Prompt.CALL_INTERRUPTED)) for leg in live]
        try:
            async with asyncio.timeout(INTERRUPT_PROMPT_BUDGET):
                await asyncio.gather(*plays, return_exceptions=True)
        except TimeoutError:
            pass


def tariff_for(job: Job, settings: Settings) -> Tariff:
    """What this consultation will cost, frozen now: later changes never rewrite it."""
    return settings.tariff(rate=job.rate, category=job.category, expert_number=job.expert_phone)


def _spellable(alias: str) -> str:
    return "".join(ch for ch in alias if ch.isalnum())[:20] or "client"


def _now() -> datetime:
    return datetime.now(UTC)
