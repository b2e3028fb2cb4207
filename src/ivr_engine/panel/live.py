"""Live pages: PostgreSQL NOTIFY in, server-sent events out.

A trigger on ``requests`` and ``experts`` notifies channel ``ivr_requests`` with the
expert's id whenever a waiting list or an expert changes, whichever engine made the
change. The hub holds one LISTEN connection and fans each id out to the open pages that
show it; a page then re-reads its live fragment. Lost connection: the hub reconnects with
capped backoff and tells every page to refresh (it may have missed a change).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

CHANNEL = "ivr_requests"
EVERYTHING = 0  # the expert id of "refresh all" (ids start at 1)
_HEARTBEAT = 15.0


class Hub:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._subscribers: dict[asyncio.Queue[int | None], int | None] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="panel-live-hub")

    def subscribe(self, expert_id: int | None) -> asyncio.Queue[int | None]:
        """``expert_id`` None: every change (the admin pages)."""
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=64)
        self._subscribers[queue] = expert_id
        return queue

    def unsubscribe(self, queue: asyncio.Queue[int | None]) -> None:
        self._subscribers.pop(queue, None)

    def publish(self, expert_id: int) -> None:
        for queue, wanted in list(self._subscribers.items()):
            if wanted is None or expert_id in (wanted, EVERYTHING):
                with contextlib.suppress(asyncio.QueueFull):  # it will refresh anyway
                    queue.put_nowait(expert_id)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.isdigit():
            self.publish(int(payload))

    async def _run(self) -> None:
        delay = 0.5
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self.listening.set()
                self.publish(EVERYTHING)
                delay = 0.5
                await lost.wait()
                log.warning("live.connection_lost")
            except (OSError, asyncpg.PostgresError, TimeoutError) as err:
                log.warning("live.connect_failed", error=str(err), retry_in=delay)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        """Stop listening and end every open event stream (safe to call twice)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)


async def stream(request: web.Request, hub: Hub, expert_id: int | None) -> web.StreamResponse:
    """Server-sent events: ``event: change`` with the expert id, a comment as heartbeat."""
    queue = hub.subscribe(expert_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), _HEARTBEAT)
            except TimeoutError:
                await response.write(b": ping\n\n")
                continue
            if item is None:
                break
            while not queue.empty():  # a burst of changes: one refresh
                if queue.get_nowait() is None:
                    return response
            await response.write(f"event: change\ndata: {item}\n\n".encode())
    except ConnectionResetError:  # the page was closed
        pass
    finally:
        hub.unsubscribe(queue)
    return response
