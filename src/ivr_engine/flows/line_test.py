"""The expert's line self-test: before a shift, the engine calls the expert's registered
number, plays a test message and asks for any key.

Read ``LineTestCall._run`` top to bottom: it is the phone call.

    the caller's own call ends first        (started from the phone menu: the expert may be
                                             calling from the very phone under test)
    ring the registered number              no answer · busy · failed → recorded, done
    "this is a line test, press any key"    a key → "your line works" → passed
                                            silence (prompt tries) or hang-up → no_key

``LineTests`` is the entry every door uses (the phone menu, the panel's button, the inbound
service-number menu): ``await line_tests.start(expert_id, source=...)`` records the test
(refused with LineTestRefused while the expert is being rung, is in a consultation or is
already being tested) and runs its call in a task it owns. The result is written only once
Asterisk has confirmed the test call's hang-up, so no consultation call can ring the
expert's phone while the test call is still on it. An engine that stops mid-test says so to
the expert, hangs up and records ``interrupted``; the tests of an engine that died are
hung up and recorded ``interrupted`` by the next engine's recovery pass.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog

from ivr_engine.aio import finish
from ivr_engine.calls import Leg
from ivr_engine.domain.routing import dial_string
from ivr_engine.errors import (
    AriError,
    AriNotFound,
    AriUnavailable,
    Hangup,
    LineTestRefused,
    OriginateFailed,
)
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.legs import BUSY_CAUSES, CallLegs
from ivr_engine.prompts import Prompt
from ivr_engine.store import line_tests as store
from ivr_engine.store.line_tests import Result, Started
from ivr_engine.store.retry import TRANSIENT, durably

log = structlog.get_logger(__name__)

ANY_KEY = "0123456789*#"
DEFERRED: tuple[type[BaseException], ...] = (AriError, AriUnavailable, *TRANSIENT)
CALLER_GONE_BUDGET = 30.0  # seconds the test waits for the call it was asked from to end


class LineTestCall(CallLegs):
    """One test call. ``after``: the call the test was asked from, which ends first."""

    def __init__(self, deps: FlowDeps, test: Started, after: Leg | None = None) -> None:
        super().__init__(deps, request_id=0)  # no request: the rows are in line_tests
        self.test = test
        self.after = after
        self.result: Result | None = None

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await finish(self._close())

    async def _run(self) -> None:
        test = self.test
        if self.after is not None:
            try:
                await self.after.wait_hangup(timeout=CALLER_GONE_BUDGET)
            except TimeoutError:
                log.warning("line_test.caller_still_on_line")
        endpoint = dial_string(test.phone, self.settings.dial_routes)
        await durably(lambda: store.dialing(self.pool, test.id, endpoint), "line test dial")
        log.info("line_test.dialing", endpoint=endpoint)
        leg = await self._originate(test.channel_id, endpoint, test.language)
        try:
            at = await leg.answered(timeout=self.settings.ring_timeout + 10)
        except OriginateFailed as err:
            await leg.destroyed(timeout=2)
            result = Result.BUSY if err.cause in BUSY_CAUSES else Result.NO_ANSWER
            if err.cause_txt.startswith("originate refused"):
                result = Result.FAILED
            return await self._record(result, cause=err.cause)
        await durably(lambda: store.answered(self.pool, test.id, at), "line test answered")
        try:
            key = await leg.collect(
                [self.media(Prompt.LINE_TEST_MESSAGE)],
                digits=ANY_KEY,
                timeout=self.settings.digit_timeout,
                tries=self.settings.prompt_tries,
            )
        except Hangup:
            key = None
        if key is None:
            if leg.is_gone:  # hung up before pressing a key
                await leg.destroyed(timeout=2)
            else:
                await self._say_and_hangup(leg, Prompt.LINE_TEST_NO_KEY)
            return await self._record(Result.NO_KEY, cause=leg.hangup_cause)
        # Passed once the phone is hung up (confirmed): until then the expert is not free.
        await self._say_and_hangup(leg, Prompt.LINE_TEST_PASSED)
        await self._record(Result.PASSED, key=key)

    async def _record(self, result: Result, *, cause: int | None = None, key: str = "") -> None:
        test_id = self.test.id
        await durably(
            lambda: store.finish(self.pool, test_id, result, cause=cause, key=key or None),
            "line test result",
        )
        self.result = result
        log.info("line_test.ended", result=result.value, cause=cause)

    async def _close(self) -> None:
        """Whatever happened, no leg is left up and a test that did not end is recorded as
        interrupted (never passed)."""
        if self.result is None and self.interrupted:
            await self._say_sorry()
        for leg in self.legs:
            try:
                if not leg.is_gone:
                    await self._hang_up(leg)
            except Exception:
                log.exception("line_test.hangup_failed", channel_id=leg.id)
            self.calls.forget(leg)
        if self.result is None:
            await self._record(Result.INTERRUPTED)


class LineTests:
    """Starts line tests and owns their call tasks (cancelled, and recorded as interrupted,
    when the engine stops)."""

    def __init__(self, deps: FlowDeps, owner: uuid.UUID | None = None, lease: float = 15.0):
        self.deps = deps
        self.owner = owner
        self.lease = lease
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.calls: dict[int, LineTestCall] = {}
        self._closing = False
        self._recovery: asyncio.Task[None] | None = None

    async def start(self, expert_id: int, *, source: str, after: Leg | None = None) -> int:
        """Record a test of the expert's line and start its call; returns the test's id.
        LineTestRefused while the expert is being rung, is in a consultation or is already
        being tested (or while the engine stops); NotFound for an unknown expert."""
        if self._closing:
            raise LineTestRefused(expert_id, "stopping")
        test = await store.begin(self.deps.pool, expert_id, source=source, owner=self.owner)
        call = LineTestCall(self.deps, test, after)
        task = asyncio.create_task(self._supervise(call), name=f"line-test-{test.id}")
        self.tasks[test.id] = task
        self.calls[test.id] = call
        log.info("line_test.started", line_test_id=test.id, expert_id=expert_id, source=source)
        return test.id

    async def _supervise(self, call: LineTestCall) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            flow="line_test", line_test_id=call.test.id, expert_id=call.test.expert_id
        )
        try:
            await call.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("line_test.crashed")
        finally:
            self.tasks.pop(call.test.id, None)
            self.calls.pop(call.test.id, None)

    async def drain(self, deadline: float) -> None:
        """No new test; running ones may finish for ``deadline`` seconds, then are ended
        politely and recorded as interrupted."""
        self._closing = True
        pending = list(self.tasks.values())
        if pending and deadline > 0:
            await asyncio.wait(pending, timeout=deadline)
        for call in self.calls.values():
            call.interrupted = True
        tasks = list(self.tasks.values())
        if self._recovery is not None:
            tasks.append(self._recovery)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.drain(0.0)

    def kick_recovery(self, *, stale_ok: bool) -> None:
        """End, in the background, the tests of engines that stopped or died."""
        if self._closing or self.owner is None:
            return
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(stale_ok), name="line-test-recovery")

    async def _recover(self, stale_ok: bool) -> None:
        assert self.owner is not None
        try:
            orphans = await store.abandoned(
                self.deps.pool, self.owner, self.lease, stale_ok=stale_ok
            )
            for orphan in orphans:
                # The phone first: the result frees the expert for consultation calls.
                try:
                    await self.deps.calls.ari.request("DELETE", f"/channels/{orphan.channel_id}")
                except AriNotFound:
                    pass
                if await store.finish(self.deps.pool, orphan.id, Result.INTERRUPTED):
                    log.warning("line_test.recovered", line_test_id=orphan.id)
        except DEFERRED as err:
            log.warning("line_test.recovery_deferred", error=repr(err))
