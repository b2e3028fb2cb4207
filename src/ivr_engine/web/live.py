"""Live pages: PostgreSQL NOTIFY in, server-sent events out.

A trigger on ``requests`` and ``experts`` notifies channel ``ivr_requests`` (or
``ivr_pages``, for changes no dispatcher needs: migration 0018) with the expert's id
whenever a waiting list or an expert changes, whichever engine made the change. The engine's
one LISTEN connection (ivr_engine.store.notify) hands each id to the hub, which fans it out
to the open pages that show it; a page then re-reads its live fragment. After a lost
connection every page is told to refresh (it may have missed one).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from ivr_engine.store.notify import PAGES, REQUESTS, Listener

EVERYTHING = 0  # the expert id of "refresh all" (ids start at 1)
_HEARTBEAT = 15.0


class Hub:
    """Fans the ``ivr_requests`` and ``ivr_pages`` notifications out to the open pages'
    event streams."""

    def __init__(self, listener: Listener) -> None:
        self._subscribers: dict[asyncio.Queue[int | None], int | None] = {}
        self._listener = listener
        listener.on(REQUESTS, self._on_notify)
        listener.on(PAGES, self._on_page)

    @property
    def listening(self) -> asyncio.Event:
        return self._listener.listening

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

    def _on_page(self, payload: str | None) -> None:
        if payload is not None:  # a reconnection is handled once, by _on_notify
            self._on_notify(payload)

    def _on_notify(self, payload: str | None) -> None:
        if payload is None:  # (re)connected: a change may have been missed
            self.publish(EVERYTHING)
        elif payload.isdigit():
            self.publish(int(payload))

    def close(self) -> None:
        """End every open event stream, so that the server can stop (safe to call twice)."""
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
