"""The expert-acceptance flow: ring the expert, offer the request, ring the client, bridge.

The client is dialled the moment the expert presses 1 (the expert hears "connecting you",
then music); the client, once answering, hears a short announcement and is bridged.

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
from ivr_engine.errors import AriError, Hangup, OriginateFailed
from ivr_engine.flows.consultation import Bridged, ConsultationWatch
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.holding import take_held
from ivr_engine.flows.legs import BUSY_CAUSES, HANGUP_BUDGET, CallLegs, Hold
from ivr_engine.prompts import Prompt
from ivr_engine.store import consultations, waiting
from ivr_engine.store.retry import durably

log = structlog.get_logger(__name__)
S = RequestState


class AcceptanceFlow(CallLegs):
    def __init__(self, deps: FlowDeps, job: Job) -> None:
        super().__init__(deps, job.request_id)
        self.job = job
        self.watch: ConsultationWatch | None = None

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await finish(self._cleanup())

    async def _run(self) -> None:
        job = self.job
        # Without the accept-by-key prompt nothing else would tell a voicemail from a person.
        expert = await self._dial(
            "expert", "offer", job.expert_phone, job.expert_language, screen=not job.acceptance_ivr
        )
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
            # Goodbye and hang-up first: the final state frees the expert for the next call.
            await self._say_and_hangup(expert, Prompt.REFUSED_GOODBYE)
            await self._end_attempt(expert, "refused", choice="3")
            await self._move(S.RINGING_EXPERT, S.REFUSED, "expert_refused")
            if job.holding_channel is None:  # a holding caller is told by their hold loop
                await self._tell_client_declined()
            return
        await self._connect(expert)

    async def _offer(self, expert: Leg) -> str | None:
        _, choice = await self._unless_gap(
            self._ask_offer(expert, self.job.client_alias, self.job.rate), expert
        )
        return choice

    async def _connect(self, expert: Leg) -> None:
        """The expert pressed 1: the client is dialled at once, while the expert hears
        "connecting you" and then music."""
        await self._move(S.RINGING_EXPERT, S.RINGING_CLIENT, "expert_accepted")
        prompt = self.media(Prompt.CONNECTING_YOU) if self.job.acceptance_ivr else None
        hold = Hold(expert, prompt)
        try:
            await self._client_stage(expert, hold)
        finally:
            await hold.close()

    async def _client_stage(self, expert: Leg, hold: Hold) -> None:
        """Ring the client for an expert on ``hold`` (up to IVR_CLIENT_ATTEMPTS calls,
        IVR_CLIENT_RETRY_DELAY apart); announce and bridge, or tell the expert why not.
        Every outcome moves the request out of RINGING_CLIENT."""
        job = self.job
        if (held := await take_held(self.deps, job)) is not None:
            # The client holds on the line: their channel is the client leg, nobody is dialled.
            await self._client_ready(expert, held, hold)
            return
        attempt = 0
        while True:
            attempt += 1
            client = await self._dial("client", "connect", job.client_phone, job.client_language)
            answered = asyncio.ensure_future(
                client.answered(timeout=self.settings.ring_timeout + 10)
            )
            expert_gone = asyncio.ensure_future(expert.wait_hangup())
            try:
                await asyncio.wait({answered, expert_gone}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # Cancelled while the client rings (the client left, a hand-back): the
                # ringing is ended by the clean-up; its outcome is nobody's business now.
                answered.cancel()
                await asyncio.gather(answered, return_exceptions=True)
                raise
            finally:
                expert_gone.cancel()
            if not answered.done():
                # The expert left while the client's phone rang: stop ringing it.
                answered.cancel()
                await asyncio.gather(answered, return_exceptions=True)
                await self._hang_up(client)
                await self._end_attempt(client, "cancelled")
                await self._expert_left_waiting(expert)
                return
            try:
                answered.result()
                break
            except OriginateFailed as err:
                await self._attempt_failed(client, err)
                if attempt < self.settings.client_attempts:
                    log.info("request.client_retry", attempt=attempt, cause=err.cause)
                    if await self._expert_holds(expert, self.settings.client_retry_delay):
                        continue
                    await self._expert_left_waiting(expert)
                    return
                await hold.end()
                await self._say_and_hangup(expert, Prompt.CLIENT_UNREACHABLE_EXPERT)
                await self._end_attempt(expert, "client_unreachable", choice="1")
                await self._client_unreachable(err.cause_txt or "no_answer")
                return
        await self._answered(client)
        await self._client_ready(expert, client, hold)

    async def _client_ready(self, expert: Leg, client: Leg, hold: Hold) -> None:
        """The client is on the line: "connecting you", then the bridge."""
        try:
            await client.play(self.media(Prompt.CLIENT_CONNECTING))
        except Hangup:
            await hold.end()
            await self._client_left(expert, client)
            return
        await hold.end()
        if expert.is_gone:
            await self._expert_left(expert, client)
            return
        await self._bridge(expert, client)

    async def _client_unreachable(self, reason: str) -> None:
        request_id = self.job.request_id
        await durably(
            lambda: waiting.client_unreachable(self.pool, request_id, reason),
            "client unreachable",
        )

    async def _expert_holds(self, expert: Leg, seconds: float) -> bool:
        """Wait ``seconds`` with the expert on hold; False if they hang up meanwhile."""
        try:
            await expert.wait_hangup(timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def _expert_left_waiting(self, expert: Leg) -> None:
        """The expert hung up while the client was being called: lost, nobody billed."""
        await expert.destroyed(timeout=HANGUP_BUDGET)
        await self._end_attempt(expert, "hung_up_before_bridge", choice="1")
        await self._move(S.RINGING_CLIENT, S.LOST, "expert_hung_up")

    async def _engine_gap(self, expert: Leg) -> None:
        log.warning("request.engine_gap")
        await self._say_sorry()
        await self._hang_up(expert)
        await self._end_attempt(expert, "interrupted")
        request_id = self.job.request_id
        await durably(
            lambda: waiting.interrupted(self.pool, request_id, S.RINGING_EXPERT),
            "request interrupted",
        )

    async def _client_left(self, expert: Leg, client: Leg) -> None:
        """The client hung up after answering, before the bridge: lost, nobody blamed."""
        await self._end_attempt(client, "hung_up_before_bridge")
        await self._say_and_hangup(expert, Prompt.CLIENT_UNREACHABLE_EXPERT)
        await self._end_attempt(expert, "client_hung_up_before_bridge", choice="1")
        await self._move(S.RINGING_CLIENT, S.LOST, "client_hung_up")

    async def _expert_left(self, expert: Leg, client: Leg) -> None:
        """The expert hung up after accepting, before the bridge: the client is told, then the
        request is lost. The final state is written last, once the client is off the line, so
        the dispatcher never rings them for another request while they still hear this one."""
        await expert.destroyed(timeout=HANGUP_BUDGET)
        await self._end_attempt(expert, "hung_up_before_bridge", choice="1")
        await self._say_and_hangup(client, Prompt.CLIENT_EXPERT_DECLINED)
        await self._end_attempt(client, "expert_hung_up_before_bridge")
        await self._move(S.RINGING_CLIENT, S.LOST, "expert_hung_up")

    async def _bridge(self, expert: Leg, client: Leg) -> None:
        job = self.job
        bridge_id = f"ivr-{job.request_id}-bridge"
        await self.calls.create_bridge(bridge_id)
        try:
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
    async def _move(self, current: RequestState, target: RequestState, reason: str) -> None:
        # PostgreSQL away: the call carries on (the caller hears music or a prompt) while the
        # move waits; a real conflict is raised at once.
        request_id = self.job.request_id
        await durably(
            lambda: waiting.move(self.pool, request_id, current, target, reason), "state move"
        )

    async def _tell_client_declined(self) -> None:
        job = self.job
        client = await self._dial("client", "notify_refused", job.client_phone, job.client_language)
        if await self._await_answer(client) is not None:
            return
        await self._say_and_hangup(client, Prompt.CLIENT_EXPERT_DECLINED)
        await self._end_attempt(client, "told_declined")

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


def tariff_for(job: Job, settings: Settings) -> Tariff:
    """What this consultation will cost, frozen now: later changes never rewrite it."""
    return settings.tariff(rate=job.rate, category=job.category, expert_number=job.expert_phone)


def _now() -> datetime:
    return datetime.now(UTC)
