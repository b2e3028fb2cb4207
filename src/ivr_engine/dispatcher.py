"""Takes due requests off the waiting lists and runs one supervised flow task per request.

The dispatcher owns every flow task: it cancels and awaits them on close. A supervisor
binds the log context and turns an unexpected error into a retry (or a ``failed`` request).

It is woken by PostgreSQL: the engine subscribes ``poke`` to the ``ivr_requests``
notifications (ivr_engine.store.notify), so any change to a waiting list or an expert,
made by this engine or another one, makes it look for due requests.

Stopping (``drain``): no new claim; a bridged consultation is detached, left up in Asterisk
for the next engine to adopt; a call not yet bridged may finish within the drain deadline,
after which it is ended politely and its request goes back to the head of the list, its
attempt not counted (``waiting.interrupted``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import structlog

from ivr_engine.aio import finish
from ivr_engine.domain.job import Job
from ivr_engine.domain.offers import FanoutJob
from ivr_engine.domain.requests import RequestState
from ivr_engine.errors import Conflict, IvrError
from ivr_engine.flows.acceptance import AcceptanceFlow
from ivr_engine.flows.consultation import ConsultationWatch
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.flows.fanout import FanoutFlow
from ivr_engine.store import claims, consultations, expiry, offers, waiting, wake
from ivr_engine.store.retry import TRANSIENT, durably

log = structlog.get_logger(__name__)
S = RequestState

IDLE_POLL = 30.0  # seconds; a safety net, the dispatcher is normally woken by NOTIFY
# After a wake-up, wait this long before looking: every state move of every call notifies,
# and a burst of them (one consultation makes about five) then costs one claim and one
# next-due query instead of one pair each. A request is rung at most this much later.
WAKE_COALESCE = 0.02  # seconds
# Under load the wake-ups never stop (about 15 a second at 5 consultations a second, each
# pass seven statements): passes start at most this often, so a busy engine looks about once
# per consultation. An engine that was quiet still looks WAKE_COALESCE after a wake-up.
MIN_PASS_INTERVAL = 0.2  # seconds
RETRY_LATER: tuple[type[BaseException], ...] = (IvrError, *TRANSIENT)
STORE_ERROR_PAUSE = 1.0  # seconds before looking again after PostgreSQL failed a claim
MAX_INTERRUPTIONS = 3  # engine-side failures of one request before it is marked failed


class Dispatcher:
    def __init__(
        self,
        deps: FlowDeps,
        ready: Callable[[], bool] = lambda: True,
        engine_id: uuid.UUID | None = None,
    ) -> None:
        self.deps = deps
        self._ready = ready
        self.engine_id = engine_id
        self.pool = deps.pool
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.flows: dict[int, AcceptanceFlow | FanoutFlow | ConsultationWatch] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self.idle = asyncio.Event()
        self._keep_state: set[int] = set()  # cancelled flows whose request the canceller moves

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="dispatcher")

    def poke(self, _payload: str | None = None) -> None:
        """Look for due requests now (a NOTIFY callback, hence the ignored payload)."""
        self._wake.set()

    @property
    def draining(self) -> bool:
        return self._closing

    async def cancel_request(self, request_id: int, *, put_back: bool = True) -> None:
        """Stop the flow of a request (the client left): its legs are hung up. With
        ``put_back`` False the request's state is left as it is: the caller moves it next
        (a hand-back), and nothing may claim it again in between."""
        task = self.tasks.get(request_id)
        if task is not None:
            if not put_back:
                self._keep_state.add(request_id)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def drain(self, deadline: float) -> None:
        """Stop claiming, leave bridged consultations up, give the other calls ``deadline``
        seconds to finish, then end them politely (their requests back at the head)."""
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while True:
            self._detach_bridged()
            pending = [t for rid, t in self.tasks.items() if not self._is_detached(rid)]
            if not pending or loop.time() >= end:
                break
            # Wake at least every second: a call that reaches its bridge is detached at once.
            await asyncio.wait(pending, timeout=min(1.0, end - loop.time()))
        for flow in list(self.flows.values()):
            if isinstance(flow, AcceptanceFlow | FanoutFlow) and not flow.detached:
                flow.interrupt()
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop now: a ``drain`` with no time for calls that are not bridged yet."""
        await self.drain(0.0)

    def watched(self) -> list[int]:
        """Requests whose bridged consultation this engine is watching (not detached)."""
        found = []
        for request_id, flow in self.flows.items():
            watch = flow if isinstance(flow, ConsultationWatch) else flow.watch
            if watch is not None and not watch.detached:
                found.append(request_id)
        return found

    def _detach_bridged(self) -> None:
        for flow in self.flows.values():
            if isinstance(flow, AcceptanceFlow | FanoutFlow):
                flow.detach()
            else:
                flow.detached = True

    def _is_detached(self, request_id: int) -> bool:
        flow = self.flows.get(request_id)
        return flow is not None and flow.detached

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            self._wake.clear()
            started = loop.time()
            if not self._ready():
                # Asterisk is away: requests wait in the database, nothing is dialled.
                await _wait_event(self._wake, 1.0)
                continue
            timeout = IDLE_POLL
            try:
                await expiry.expire(self.pool, self.deps.settings.request_ttl_hours)
                while self._ready() and (job := await self._claim()) is not None:
                    self._spawn(job)
                # Experts' own waiting lists first, then the category requests (fan-outs).
                while self._ready() and (fan := await self._claim_fanout()) is not None:
                    self._spawn_fanout(fan)
                # The next request due (either kind) or expiry: one statement, one round trip.
                due = await wake.next_wake(
                    self.pool, self.engine_id, self.deps.settings.request_ttl_hours
                )
                if due is not None:
                    timeout = max(0.05, min(IDLE_POLL, (due - datetime.now(UTC)).total_seconds()))
            except RETRY_LATER as err:
                # PostgreSQL restarting or failing over: look again shortly, never give up.
                log.warning("dispatcher.store_error", error=repr(err))
                timeout = STORE_ERROR_PAUSE
            self.idle.set() if not self.tasks else self.idle.clear()
            if await _wait_event(self._wake, timeout):
                await asyncio.sleep(max(WAKE_COALESCE, started + MIN_PASS_INTERVAL - loop.time()))

    async def _claim(self) -> Job | None:
        return await claims.claim_next(self.pool, self.engine_id)

    def _spawn(self, job: Job) -> None:
        flow = AcceptanceFlow(self.deps, job)
        self.flows[job.request_id] = flow
        context = {"expert_id": job.expert_id, "attempt": job.attempt_no}
        self._track(
            job.request_id,
            self._supervise(job.request_id, flow, context),
            f"request-{job.request_id}",
        )

    async def _claim_fanout(self) -> FanoutJob | None:
        fanout = self.deps.settings.offer_fanout
        return await offers.claim_next(self.pool, self.engine_id, fanout)

    def _spawn_fanout(self, job: FanoutJob) -> None:
        flow = FanoutFlow(self.deps, job)
        self.flows[job.request_id] = flow
        context = {"category": job.category, "attempt": job.round}
        self._track(
            job.request_id,
            self._supervise(job.request_id, flow, context),
            f"offer-{job.request_id}",
        )

    def watch(self, request_id: int, watch: ConsultationWatch) -> None:
        """Run an adopted consultation's watch as one of this dispatcher's tasks."""
        self.flows[request_id] = watch
        self._track(request_id, self._run_watch(request_id, watch), f"adopted-{request_id}")

    def _track(self, request_id: int, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self.tasks[request_id] = task
        self.idle.clear()

    async def _run_watch(self, request_id: int, watch: ConsultationWatch) -> None:
        structlog.contextvars.bind_contextvars(request_id=request_id, adopted=True)
        try:
            await watch.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consultation.watch_crashed")
        finally:
            self._forget(request_id)
            structlog.contextvars.unbind_contextvars("request_id", "adopted")

    async def _supervise(
        self, request_id: int, flow: AcceptanceFlow | FanoutFlow, context: Mapping[str, object]
    ) -> None:
        structlog.contextvars.bind_contextvars(request_id=request_id, **context)
        log.debug("request.dialing_expert")
        try:
            await flow.run()
        except asyncio.CancelledError:
            if not flow.detached and request_id not in self._keep_state:
                await finish(self._put_back(request_id))
            raise
        except Exception:
            log.exception("request.flow_crashed")
            await finish(self._fail(request_id))
        finally:
            self._forget(request_id)
            self._keep_state.discard(request_id)
            if self.deps.holding is not None:  # a caller holding for it looks again
                self.deps.holding.settled(request_id)
            log.info("request.flow_done", detached=flow.detached)
            structlog.contextvars.unbind_contextvars("request_id", *context)
            self.poke()

    def _forget(self, request_id: int) -> None:
        self.tasks.pop(request_id, None)
        self.flows.pop(request_id, None)

    async def _put_back(self, request_id: int) -> None:
        """The engine stopped this call before its bridge (or a leaving client did): keep
        the request consistent; an interrupted call costs nobody an attempt."""
        view = await durably(lambda: waiting.get(self.pool, request_id), "read request")
        try:
            if view.state in (S.RINGING_EXPERT, S.RINGING_CLIENT):
                await durably(
                    lambda: waiting.interrupted(self.pool, request_id, view.state),
                    "request interrupted",
                )
            elif view.state is S.CONNECTED:  # cancelled between the bridge and its watch
                await durably(
                    lambda: consultations.finish(
                        self.pool, request_id, end=None, ended_by="engine"
                    ),
                    "consultation end",
                )
        except Conflict:
            pass

    async def _fail(self, request_id: int) -> None:
        """The flow crashed (Asterisk went away mid-call, a bug): an engine-side problem is
        nobody's fault, so the request goes back like an interrupted one, unless the engine
        keeps failing on it (then ``failed``, for a person to look at)."""
        try:
            view = await durably(lambda: waiting.get(self.pool, request_id), "read request")
            if view.state in (S.RINGING_EXPERT, S.RINGING_CLIENT):
                if await waiting.interruptions(self.pool, request_id) < MAX_INTERRUPTIONS:
                    await waiting.interrupted(self.pool, request_id, view.state)
                    return
                await waiting.move(self.pool, request_id, view.state, S.FAILED, "engine_error")
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


async def _wait_event(event: asyncio.Event, timeout: float) -> bool:
    """True if ``event`` was set, False if ``timeout`` ran out first."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True
