"""The legs of one request's call and their attempt rows: dialling with the intent written
first, waiting for an answer, prompts, and the clean-up every flow ends with.

``AcceptanceFlow`` (acceptance.py) tells the story of the call; this is what it is made of.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

import structlog

from ivr_engine.aio import unless
from ivr_engine.calls import Leg
from ivr_engine.calls.leg import MachineVerdict
from ivr_engine.domain.routing import dial_string
from ivr_engine.errors import AriError, AriUnavailable, Hangup, OriginateFailed, StepTimeout
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.prompts import Prompt, rate_media, sound_uri
from ivr_engine.store import attempts
from ivr_engine.store.retry import durably

log = structlog.get_logger(__name__)

BUSY_CAUSES = {17}  # Q.850 user busy
INTERRUPT_PROMPT_BUDGET = 8.0  # seconds for "sorry, we have to end this call" on a stop
HANGUP_BUDGET = 5.0  # seconds for Asterisk to report a channel we hung up as destroyed
DETECTION_MARGIN = 5.0  # seconds beyond AMD's own analysis time before we stop waiting

T = TypeVar("T")


class CallLegs:
    def __init__(self, deps: FlowDeps, request_id: int) -> None:
        self.deps = deps
        self.request_id = request_id
        self.settings = deps.settings
        self.pool = deps.pool
        self.calls = deps.calls
        self.legs: list[Leg] = []
        self.screened: set[str] = set()  # channel ids that must prove a person answered
        self.ended: set[str] = set()  # channel ids whose attempt row is final
        self.detached = False  # the engine stops and leaves the bridged call up
        self.interrupted = False  # the engine stops before the bridge

    async def _unless_gap(self, step: Awaitable[T], leg: Leg) -> tuple[bool, T | None]:
        """Run ``step`` (keys asked on ``leg``) unless the event socket drops meanwhile: a
        key pressed while it was down is lost, so the question stops at once and its
        prompts are stopped. Returns (False, None) on a gap, else (True, the result)."""
        heard, result = await unless(step, self.calls.ari.next_reconnection())
        if not heard:
            await leg.stop_playbacks()
        return heard, result

    def _ask_offer(self, expert: Leg, client_alias: str, rate: Decimal) -> Awaitable[str | None]:
        """The offer (who asks, at what rate) and its keys: 1 accepts, 3 refuses."""
        return expert.collect(
            [
                self.media(Prompt.OFFER_REQUEST_FROM),
                f"characters:{_spellable(client_alias)}",
                *rate_media(rate, self.settings.sound_prefix),
                self.media(Prompt.ACCEPT_OR_REFUSE),
            ],
            digits="13",
            timeout=self.settings.digit_timeout,
            tries=self.settings.prompt_tries,
            invalid=[self.media(Prompt.INVALID_KEY)],
        )

    def media(self, prompt: Prompt) -> str:
        return sound_uri(prompt, self.settings.sound_prefix)

    async def _gone_one(self, expert: Leg, client: Leg) -> Leg | None:
        """Which of the two has hung up (asking Asterisk, its event may be on its way)."""
        for leg in (client, expert):
            if leg.is_gone or await self.calls.channel_state(leg.id) is None:
                await leg.destroyed(timeout=1)
                return leg
        return None

    async def _dial(
        self,
        leg: str,
        purpose: str,
        number: str,
        language: str,
        *,
        screen: bool = False,
        recorded: str | None = None,
    ) -> Leg:
        """Ring ``number``; ``screen``: its answer counts only once Asterisk's answering-machine
        detection says a person took the call (see ``_await_answer``); ``recorded``: the
        channel id of an attempt row the caller has already written (``_intent``)."""
        endpoint = dial_string(number, self.settings.dial_routes)
        request_id = self.request_id
        channel_id = recorded
        if channel_id is None:
            channel_id = await durably(
                lambda: attempts.new(
                    self.pool, request_id, leg=leg, purpose=purpose, dial_string=endpoint
                ),
                "attempt intent",
            )
        structlog.contextvars.bind_contextvars(**{f"{leg}_channel": channel_id})
        log.info("call.dialing", leg=leg, purpose=purpose, endpoint=endpoint)
        if screen:
            self.screened.add(channel_id)
        return await self._originate(channel_id, endpoint, language)

    async def _originate(self, channel_id: str, endpoint: str, language: str) -> Leg:
        """Ring ``endpoint`` on ``channel_id`` (recorded by the caller first); a refused
        originate gives a leg that has already failed, so flows read straight."""
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
        """Wait for ``leg`` to answer and record it; if it never does, the (recorded) failure.

        A screened leg answered by a machine (or by nobody Asterisk could call a person) did
        not answer: it is hung up and recorded as a no-answer, never bridged, never billed.
        """
        try:
            await leg.answered(timeout=self.settings.ring_timeout + 10)
            if leg.id in self.screened:
                await self._screen(leg)
        except OriginateFailed as err:
            await self._attempt_failed(leg, err)
            return err
        await self._answered(leg)
        return None

    async def _screen(self, leg: Leg) -> None:
        """Asterisk's AMD() on the answered ``leg``: OriginateFailed unless a person spoke."""
        s = self.settings
        try:
            verdict = await leg.detect_machine(
                s.amd_arguments, timeout=s.amd_total_analysis_ms / 1000 + DETECTION_MARGIN
            )
        except Hangup:
            verdict = MachineVerdict("HANGUP", "hung up during the detection")
        except (AriError, AriUnavailable, StepTimeout) as err:
            verdict = MachineVerdict("", f"detection failed: {err}")
        log.info("call.machine_detection", status=verdict.status, cause=verdict.cause)
        if verdict.human:
            return
        if verdict.status == "UNAVAILABLE":
            log.error("call.machine_detection_unavailable", hint="load app_amd in Asterisk")
        await self._hang_up(leg)
        text = f"not a person: AMD {verdict.status or 'no verdict'} {verdict.cause}".strip()
        # No Q.850 cause of its own: the outcome is a no-answer whatever the hangup's cause.
        raise OriginateFailed(leg.id, None, text)

    async def _answered(self, leg: Leg) -> None:
        at = leg.answered_at or _now()
        await durably(lambda: attempts.answered(self.pool, leg.id, at), "attempt answered")

    async def _say_and_hangup(self, leg: Leg, prompt: Prompt) -> None:
        """Say goodbye, hang up, and return once Asterisk says the channel is gone."""
        try:
            await leg.play(self.media(prompt))
        except Hangup:
            pass
        await self._hang_up(leg)

    async def _hang_up(self, leg: Leg) -> None:
        """Hang up and wait (bounded) for ChannelDestroyed: until then the phone is still
        busy, so the request's final state, which lets the dispatcher ring this person for
        the next request, is written only after this."""
        await leg.hangup()
        await leg.destroyed(timeout=HANGUP_BUDGET)

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


class Hold:
    """What a caller hears while the other party is rung: a prompt (or none), then music.

    It starts at once, beside the dialling, and is ended (prompt or music stopped) before
    the bridge or a goodbye. ``close`` is for ``finally``: it only cancels the task.
    """

    def __init__(self, leg: Leg, prompt: str | None) -> None:
        self.leg = leg
        self._over = False
        self._music = False  # start_moh was asked for: end() must stop it
        self._task = asyncio.create_task(self._run(prompt), name=f"hold-{leg.id}")

    async def _run(self, prompt: str | None) -> None:
        if prompt is not None:
            await self.leg.play(prompt)
        if not self._over:
            self._music = True
            await self.leg.start_moh()

    async def end(self) -> None:
        """Stop the prompt or the music; a leg that has hung up is not an error."""
        if self._over:
            return
        self._over = True
        try:
            if not self._task.done():
                await self.leg.stop_playbacks()  # the prompt ends; no music follows it
                await asyncio.wait({self._task}, timeout=HANGUP_BUDGET)
        finally:
            await self.close()
        if self._music and not self.leg.is_gone:
            await self.leg.stop_moh()

    async def close(self) -> None:
        self._over = True
        if not self._task.done():
            self._task.cancel()
        (outcome,) = await asyncio.gather(self._task, return_exceptions=True)
        if isinstance(outcome, Exception) and not isinstance(outcome, Hangup):
            # The caller heard silence instead of the prompt or the music; the call goes on.
            log.warning("call.hold_failed", channel_id=self.leg.id, error=repr(outcome))


def _now() -> datetime:
    return datetime.now(UTC)


def _spellable(alias: str) -> str:
    return "".join(ch for ch in alias if ch.isalnum())[:20] or "client"
