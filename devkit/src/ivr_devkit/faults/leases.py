"""Whether every live engine keeps its lease: sampled from PostgreSQL twice a second, the age
of each running (not stopped) engine's heartbeat. A live engine whose heartbeat is older than
``IVR_LEASE_SECONDS`` looks dead to any other engine, which would adopt its calls; its
bridges' ``seen_at`` stops moving too. Ages right after a PostgreSQL restart are expected
(nobody could write a heartbeat) and are left out by the report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from ivr_devkit.faults.load import READ_AGAIN

EVERY = 0.5  # seconds


@dataclass(frozen=True)
class Stale:
    pid: int
    age: float  # seconds since its last heartbeat
    at: float  # seconds since the run began


class LeaseWatch:
    def __init__(
        self,
        pool: asyncpg.Pool,
        lease: float,
        elapsed: Callable[[], float],
        alive: Callable[[], set[int]],
    ) -> None:
        self.pool = pool
        self.lease = lease
        self.elapsed = elapsed
        self.alive = alive  # the PIDs of the engine processes running now
        self.samples: list[Stale] = []  # every sample older than the lease

    async def run(self) -> None:
        while True:
            await asyncio.sleep(EVERY)
            try:
                rows = await self.pool.fetch(
                    "SELECT pid, extract(epoch FROM clock_timestamp() - heartbeat_at) AS age"
                    " FROM engines WHERE stopped_at IS NULL"
                )
            except READ_AGAIN:
                continue
            at, alive = self.elapsed(), self.alive()
            self.samples += [
                Stale(int(row["pid"]), float(row["age"]), at)
                for row in rows
                if int(row["pid"]) in alive and float(row["age"]) > self.lease
            ]

    def lapses(self, quiet: list[tuple[float, float]]) -> list[Stale]:
        """Per engine, its oldest heartbeat seen outside the ``quiet`` windows (PostgreSQL
        restarts and the lease after them), if older than the lease."""
        worst: dict[int, Stale] = {}
        for seen in self.samples:
            if any(start <= seen.at <= end for start, end in quiet):
                continue
            if seen.pid not in worst or seen.age > worst[seen.pid].age:
                worst[seen.pid] = seen
        return sorted(worst.values(), key=lambda s: s.at)
