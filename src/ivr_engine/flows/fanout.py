"""The fan-out flow: a category request offered to several experts at the same time.

Every offered expert is rung at once and hears the offer (always with the accept-or-refuse
keys: the key decides the race). The first to press 1 wins, by one compare-and-set in
PostgreSQL (``offers.win``), and the call goes on as an ordinary acceptance: the winner's
leg is handed to an ``AcceptanceFlow``, which calls the client and bridges. Every other
expert hears "this client has already been taken, thank you" and is hung up (a phone still
ringing is just hung up): nobody is billed for the race and nobody counts as having missed
it. Pressing 3 refuses (that expert is never offered this request again); no answer, busy,
no key or a hang-up during the offer counts as a missed call for that expert (not rung again
for ``IVR_RETRY_DELAY``). When nobody wins the request waits for the next round, or is
``refused`` when every expert of the category has refused it (``offers.nobody_took``).

The client leaving (``DELETE``) cancels this flow: every expert still ringing or listening
is hung up at once by the clean-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar, cast

import structlog

from ivr_engine.aio import finish, unless
from ivr_engine.calls import Leg
from ivr_engine.domain.offers import Candidate, FanoutJob
from ivr_engine.errors import Hangup
from ivr_engine.flows.acceptance import AcceptanceFlow
from ivr_engine.flows.consultation import ConsultationWatch
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.legs import CallLegs
from ivr_engine.prompts import Prompt
from ivr_engine.store import offers
from ivr_engine.store.retry import durably

log = structlog.get_logger(__name__)
T = TypeVar("T")


class _Taken(Exception):
    """Another expert won the request while this one was ringing or listening."""


class _Gap(Exception):
    """The ARI event socket dropped during the offer: a key may have been lost."""


class FanoutFlow(CallLegs):
    def __init__(self, deps: FlowDeps, job: FanoutJob) -> None:
        super().__init__(deps, job.request_id)
        self.job = job
        self.winner: AcceptanceFlow | None = None
        self._taken = asyncio.Event()

    @property
    def watch(self) -> ConsultationWatch | None:
        return self.winner.watch if self.winner is not None else None

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await finish(self._hang_up_offers())

    async def _run(self) -> None:
        tasks = {asyncio.ensure_future(self._offer_to(c)): c for c in self.job.candidates}
        for task, c in tasks.items():
            task.set_name(f"offer-{self.job.request_id}-{c.expert_id}")
        pending = set(tasks)
        try:
            won: tuple[Candidate, Leg] | None = None
            while pending and won is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if (leg := task.result()) is not None:
                        won = (tasks[task], leg)
            if won is None:
                view = await durably(
                    lambda: offers.nobody_took(self.pool, self.job.request_id), "nobody took it"
                )
                log.info("offer.nobody_took_it", state=view.state.value)
                return
            await self._connect(*won)
        except BaseException:
            for task in pending:  # cancelled (the client left, the engine stops) or a bug
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        # The others have been told (or are being told) the client is taken.
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.error("offer.leg_failed", error=repr(outcome))

    async def _connect(self, c: Candidate, expert: Leg) -> None:
        """The winner's call goes on as an ordinary acceptance, from the key press on."""
        log.info("offer.won", expert_id=c.expert_id)
        flow = AcceptanceFlow(self.deps, self.job.won_by(c))
        flow.interrupted = self.interrupted
        self.legs.remove(expert)
        flow.legs.append(expert)
        self.winner = flow
        try:
            await flow._connect(expert)  # the client stage (issue 11)
        finally:
            await finish(flow._cleanup())

    async def _offer_to(self, c: Candidate) -> Leg | None:
        """Ring one expert and offer the request; the leg if they won it."""
        structlog.contextvars.bind_contextvars(offer_expert_id=c.expert_id)
        expert = await self._dial("expert", "offer", c.phone, c.language)
        try:
            if (err := await self._unless_taken(self._await_answer(expert))) is not None:
                log.info("offer.not_answered", cause=err.cause)
                await self._missed(c, "no_answer")
                return None
            try:
                choice = await self._unless_taken(self._offer(c, expert))
            except Hangup:
                choice = ""
            except _Gap:
                # A key pressed while the event socket was down is lost: the engine's gap
                # is not the expert's missed call. Sorry, goodbye; offered again next round.
                await self._say_and_hangup(expert, Prompt.CALL_INTERRUPTED)
                await self._end_attempt(expert, "interrupted")
                await durably(
                    lambda: offers.end_offer(self.pool, c.offer_id, "released", "engine_gap"),
                    "offer end",
                )
                return None
            if choice == "1":
                if await durably(
                    lambda: offers.win(self.pool, self.request_id, c.offer_id, c.expert_id),
                    "offer won",
                ):
                    self._taken.set()
                    return expert
                raise _Taken
        except _Taken:
            await self._taken_by_other(c, expert)
            return None
        if choice == "3":
            await self._say_and_hangup(expert, Prompt.REFUSED_GOODBYE)
            await self._end_attempt(expert, "refused", choice="3")
            await durably(lambda: offers.end_offer(self.pool, c.offer_id, "refused"), "offer end")
            return None
        if not expert.is_gone:
            await self._say_and_hangup(expert, Prompt.NO_CHOICE_GOODBYE)
        await self._end_attempt(expert, "no_choice" if choice == "" else "hung_up")
        await self._missed(c, "no_choice")
        return None

    async def _offer(self, c: Candidate, expert: Leg) -> str:
        """The offer and its keys; _Gap if the event socket drops meanwhile."""
        heard, choice = await self._unless_gap(
            self._ask_offer(expert, self.job.client_alias, c.rate), expert
        )
        if not heard:
            raise _Gap
        return choice or ""

    async def _unless_taken(self, step: Awaitable[T]) -> T:
        """``step``, unless another expert wins first (then _Taken, the step cancelled)."""
        done, result = await unless(step, self._taken.wait())
        if not done:
            raise _Taken
        return cast(T, result)  # the step's own result, None included

    async def _taken_by_other(self, c: Candidate, expert: Leg) -> None:
        """Another expert won: no bill, no missed call; hear why if the phone was answered."""
        if expert.is_answered and not expert.is_gone:
            await expert.stop_playbacks()
            await self._say_and_hangup(expert, Prompt.ALREADY_TAKEN)
        else:
            await self._hang_up(expert)
        await self._end_attempt(expert, "taken_by_other")
        await durably(lambda: offers.end_offer(self.pool, c.offer_id, "taken"), "offer end")

    async def _missed(self, c: Candidate, reason: str) -> None:
        s = self.settings
        await durably(lambda: offers.end_offer(self.pool, c.offer_id, "no_answer", reason), "offer")
        await durably(lambda: offers.missed(self.pool, c.expert_id, s.retry_delay), "offer missed")

    def detach(self) -> bool:
        """The engine is stopping: a bridged winner's call is left up for the next engine."""
        if self.winner is not None and self.winner.detach():
            self.detached = True
            return True
        return False

    def interrupt(self) -> None:
        self.interrupted = True
        if self.winner is not None:
            self.winner.interrupt()

    async def _hang_up_offers(self) -> None:
        """The offered legs are never part of a bridge: hang them up even when the winner's
        consultation is left up (detached) for the next engine."""
        detached, self.detached = self.detached, False
        try:
            await self._cleanup()
        finally:
            self.detached = detached
