"""Takes due requests off the waiting lists and runs one supervised flow task per request.

The dispatcher owns every flow task: it cancels and awaits them on close. A supervisor
binds the log context, turns an unexpected error into a ``failed`` request, and puts a
request whose call was cut by an engine stop back in the waiting list (shielded).

It is woken by PostgreSQL: the engine subscribes ``poke`` to the ``ivr_requests``
notifications (ivr_engine.store.notify), so any change to a waiting list or an expert,
made by this engine or another one, makes it look for due requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from ivr_engine.aio import finish
from ivr_engine.domain.job import Job
from ivr_engine.domain.requests import RequestState
from ivr_engine.errors import Conflict, IvrError
from ivr_engine.flows.acceptance import AcceptanceFlow
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.store import claims, consultations, waiting

log = structlog.get_logger(__name__)
S = RequestState

IDLE_POLL = 30.0  # seconds; a safety net, the dispatcher is normally woken by NOTIFY


class Dispatcher:
    def __init__(self, deps: FlowDeps, ready: Callable[[], bool] = lambda: True) -> None:
        self.deps = deps
        self._ready = ready
        self.pool = deps.pool
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self.idle = asyncio.Event()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="dispatcher")

    def poke(self, _payload: str | None = None) -> None:
        """Look for due requests now (a NOTIFY callback, hence the ignored payload)."""
        self._wake.set()

    async def cancel_request(self, request_id: int) -> None:
        """Stop the flow of a request (the client left): its legs are hung up."""
        task = self.tasks.get(request_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._closing:
            self._wake.clear()
            if not self._ready():
                # Asterisk is away: requests wait in the database, nothing is dialled.
                await _wait_event(self._wake, 1.0)
                continue
            try:
                while self._ready() and (job := await claims.claim_next(self.pool)) is not None:
                    self._spawn(job)
                due = await claims.next_due(self.pool)
            except (IvrError, OSError) as err:
                log.warning("dispatcher.store_error", error=str(err))
                due = None
            self.idle.set() if not self.tasks else self.idle.clear()
            timeout = IDLE_POLL
            if due is not None:
                timeout = max(0.05, min(IDLE_POLL, (due - datetime.now(UTC)).total_seconds()))
            await _wait_event(self._wake, timeout)

    def _spawn(self, job: Job) -> None:
        task = asyncio.create_task(self._supervise(job), name=f"request-{job.request_id}")
        self.tasks[job.request_id] = task
        self.idle.clear()

    async def _supervise(self, job: Job) -> None:
        structlog.contextvars.bind_contextvars(
            request_id=job.request_id, expert_id=job.expert_id, attempt=job.attempt_no
        )
        log.info("request.dialing_expert")
        try:
            await AcceptanceFlow(self.deps, job).run()
        except asyncio.CancelledError:
            await finish(self._put_back(job.request_id))
            raise
        except Exception:
            log.exception("request.flow_crashed")
            await finish(self._fail(job.request_id))
        finally:
            self.tasks.pop(job.request_id, None)
            view = None
            try:
                view = await finish(waiting.get(self.pool, job.request_id))
            except Exception:
                pass
            log.info("request.flow_done", state=view.state.value if view else "unknown")
            structlog.contextvars.unbind_contextvars("request_id", "expert_id", "attempt")
            self.poke()

    async def _put_back(self, request_id: int) -> None:
        """An engine stop or a leaving client cut the flow: keep the request consistent."""
        view = await waiting.get(self.pool, request_id)
        try:
            if view.state in (S.RINGING_EXPERT, S.RINGING_CLIENT):
                await waiting.move(self.pool, request_id, view.state, S.WAITING, "engine_stopped")
            elif view.state is S.CONNECTED:
                await consultations.finish(self.pool, request_id, end=None, ended_by="engine")
        except Conflict:
            pass

    async def _fail(self, request_id: int) -> None:
        """The flow crashed (Asterisk or PostgreSQL went away mid-call): retry, lose nothing."""
        settings = self.deps.settings
        try:
            view = await waiting.get(self.pool, request_id)
            if view.state in (S.RINGING_EXPERT, S.RINGING_CLIENT):
                await waiting.missed(
                    self.pool,
                    request_id,
                    retry_delay=settings.retry_delay,
                    max_attempts=settings.max_attempts,
                    reason="engine_error",
                )
            elif view.state is S.CONNECTED:
                await consultations.finish(self.pool, request_id, end=None, ended_by="engine")
        except Exception:
            log.exception("request.fail_record_failed")
            try:
                view = await waiting.get(self.pool, request_id)
                if not view.state.is_final:
                    await waiting.move(self.pool, request_id, view.state, S.FAILED, "engine_error")
            except Exception:
                log.exception("request.failed_state_not_recorded")


async def recover_orphans(dispatcher: Dispatcher) -> int:
    """Finish requests left active by an engine that stopped without closing them.

    Their calls are hung up and the request goes back to the waiting list (a consultation
    that was connected is closed and billed until now). Runs when ARI (re)connects.
    """
    calls = dispatcher.deps.calls
    pool = dispatcher.pool
    orphans = await claims.orphans(pool, set(dispatcher.tasks))
    for request_id, state, channels in orphans:
        for channel_id in channels:
            await calls.adopt(channel_id, "en").hangup()
            calls.legs.pop(channel_id, None)
        try:
            if state is S.CONNECTED:
                await consultations.finish(pool, request_id, end=None, ended_by="engine")
            else:
                await waiting.move(pool, request_id, state, S.WAITING, "engine_restarted")
        except Conflict:
            continue
        log.warning("request.recovered", request_id=request_id, was=state.value)
    if orphans:
        dispatcher.poke()
    return len(orphans)


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass
