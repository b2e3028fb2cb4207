"""This engine's identity and lease in PostgreSQL, renewed every few seconds.

Every ``lease / 3`` seconds the engine renews its heartbeat and notes that its bridges are
still up (``consultations.seen_at``), then looks for work to recover: at once for engines
that stopped cleanly, and for engines whose heartbeat is older than the lease only once this
engine has itself been heard for a whole lease without a gap (after a PostgreSQL outage
every heartbeat is old, and a live engine must not be taken for a dead one).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable

import asyncpg
import structlog

from ivr_engine.store import engines
from ivr_engine.store.retry import TRANSIENT

log = structlog.get_logger(__name__)

Recover = Callable[[bool], None]  # starts a recovery pass in the background, never waits


class Lease:
    def __init__(
        self,
        pool: asyncpg.Pool,
        ari_app: str,
        seconds: float,
        watched: Callable[[], list[int]] = list,
    ) -> None:
        self.pool = pool
        self.ari_app = ari_app
        self.seconds = seconds
        self.id = uuid.uuid4()
        # The requests whose bridge this engine is watching now (while ARI's events reach it):
        # only those are noted as seen; a detached or unwatched one keeps its last sighting.
        self._watched = watched
        self._task: asyncio.Task[None] | None = None
        self._healthy_since: float | None = None

    async def register(self) -> None:
        await engines.register(self.pool, self.id, self.ari_app, socket.gethostname(), os.getpid())
        self._healthy_since = asyncio.get_running_loop().time()
        log.info("engine.registered", engine_id=str(self.id))

    def start(self, recover: Recover) -> None:
        """Renew the lease from now on, and after each renewal start a recovery pass."""
        self._task = asyncio.create_task(self._run(recover), name="engine-lease")

    def trusted(self) -> bool:
        """True once this engine has renewed its lease without a gap for a whole lease."""
        if self._healthy_since is None:
            return False
        return asyncio.get_running_loop().time() - self._healthy_since >= self.seconds

    async def _run(self, recover: Recover) -> None:
        period = self.seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                await engines.heartbeat(self.pool, self.id, timeout=period, watched=self._watched())
            except TRANSIENT as err:
                if self._healthy_since is not None:
                    log.warning("engine.heartbeat_failed", error=repr(err))
                self._healthy_since = None
                continue
            if self._healthy_since is None:
                self._healthy_since = asyncio.get_running_loop().time()
                log.info("engine.heartbeat_back")
            # In the background: a pass may take seconds (prompts), the lease may not wait.
            recover(self.trusted())

    async def release(self) -> None:
        """A clean stop: the calls left up may be adopted by the next engine at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await engines.stopped(self.pool, self.id)
        except TRANSIENT as err:  # the others will wait for the lease to expire instead
            log.warning("engine.release_failed", error=repr(err))
