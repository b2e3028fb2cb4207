"""PostgreSQL NOTIFY in: one LISTEN connection per engine, fanned out to callbacks.

Triggers (migrations 0006, 0007 and 0018) notify ``ivr_requests`` with an expert's id
whenever a waiting list or an expert changes in a way that may let a dispatcher ring
someone, ``ivr_pages`` for the other changes the live pages show, and ``ivr_outbox``
whenever an email is queued, whichever engine made the change. The dispatcher, the email
sender and the live pages subscribe here, so no code path has to remember to wake them, and
engines sharing a database wake each other. Lost connection: the listener reconnects with
capped backoff and calls every callback with ``None`` (a change may have been missed: look
again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)

REQUESTS = "ivr_requests"
OUTBOX = "ivr_outbox"
# Changes that can make nothing claimable (a request moving into an active state, the claim
# queue's bookkeeping on experts: migration 0018): for the live pages only, so that they do
# not wake every engine's dispatcher.
PAGES = "ivr_pages"

Callback = Callable[[str | None], None]
# A LISTEN connection is cheap to retry; waking the dispatcher late after PostgreSQL is back
# would delay every waiting client.
RECONNECT_CAP = 2.0


class Listener:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._callbacks: dict[str, list[Callback]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def on(self, channel: str, callback: Callback) -> None:
        """Call ``callback(payload)`` on each notification (register before ``start``)."""
        self._callbacks.setdefault(channel, []).append(callback)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notify-listener")

    async def close(self) -> None:
        """Stop listening (safe to call twice)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        for callback in self._callbacks.get(channel, []):
            callback(payload)

    def _everyone(self) -> None:
        for callbacks in self._callbacks.values():
            for callback in callbacks:
                callback(None)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in self._callbacks:
                    await conn.add_listener(channel, self._dispatch)
                self.listening.set()
                self._everyone()
                delay = 0.5
                await lost.wait()
                log.warning("notify.connection_lost")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
                log.warning("notify.connect_failed", error=str(err), retry_in=delay)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_CAP)
