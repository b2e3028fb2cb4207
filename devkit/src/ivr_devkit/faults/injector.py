"""The faults: one at a time, at random moments (a seeded RNG), the engine is killed (SIGKILL,
a new one started 0-5 s later), stopped (SIGTERM, a new one started once it has exited) or
PostgreSQL is restarted (away 0-5 s). There is always an engine afterwards; one that exits
by itself is noted and replaced.
"""

from __future__ import annotations

import asyncio
import functools
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass

from ivr_devkit.faults.engines import Engines
from ivr_devkit.pgcluster import ThrowawayCluster

KINDS = ("kill -9", "SIGTERM", "PostgreSQL restart")
GAP = (15.0, 30.0)  # seconds between two faults
DOWN_FOR = (0.0, 5.0)  # seconds the engine (after kill -9) or PostgreSQL stays away
SIGTERM_WAIT = 60.0  # seconds a stopping engine may take (its drain and its close)


@dataclass(frozen=True)
class Fault:
    at: float  # seconds since the run began
    kind: str
    detail: str
    took: float  # seconds until the service was whole again (a healthy engine, PostgreSQL up)


class Injector:
    def __init__(
        self,
        rng: random.Random,
        engines: Engines,
        cluster: ThrowawayCluster,
        elapsed: Callable[[], float],
        say: Callable[[str], None],
    ) -> None:
        self.rng = rng
        self.engines = engines
        self.cluster = cluster
        self.elapsed = elapsed
        self.say = say
        self.faults: list[Fault] = []
        self.surprises: list[str] = []  # engines that exited by themselves, slow stops
        self._restart: asyncio.Future[None] | None = None  # PostgreSQL's, in a thread

    async def run(self, stop: asyncio.Event) -> None:
        """Inject faults until ``stop`` is set; a fault under way is always finished."""
        while not stop.is_set():
            gap = self.rng.uniform(*GAP)
            kind = self.rng.choice(KINDS)
            down_for = self.rng.uniform(*DOWN_FOR)
            try:
                await asyncio.wait_for(stop.wait(), gap)
                return
            except TimeoutError:
                pass
            await self.check_engine()
            at = self.elapsed()
            if kind == "kill -9":
                detail = await self._kill(down_for)
            elif kind == "SIGTERM":
                detail = await self._term()
            else:
                detail = await self._pg_restart(down_for)
            fault = Fault(at, kind, detail, self.elapsed() - at)
            self.faults.append(fault)
            self.say(f"[{clock(at)}] fault: {kind}: {detail} (whole again in {fault.took:.1f} s)")

    async def settle(self) -> None:
        """After a cancel: a PostgreSQL restart under way in its thread is waited for."""
        if self._restart is not None and not self._restart.done():
            await asyncio.wait([self._restart], timeout=60)

    async def check_engine(self) -> None:
        """An engine that exited without being told to is replaced, and noted."""
        engine = self.engines.current
        if not engine.running:
            note = f"engine {engine.number} exited by itself (code {engine.returncode})"
            self.surprises.append(f"[{clock(self.elapsed())}] {note}")
            self.say(note)
            await self.engines.start_new()

    async def _kill(self, down_for: float) -> str:
        old = self.engines.current
        old.send(signal.SIGKILL)
        await old.wait(10)
        await asyncio.sleep(down_for)
        new = await self.engines.start_new()
        return (
            f"engine {old.number} (pid {old.pid}) killed; engine {new.number} (pid {new.pid})"
            f" started after {down_for:.1f} s"
        )

    async def _term(self) -> str:
        old = self.engines.current
        old.send(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        began = loop.time()
        code = await old.wait(SIGTERM_WAIT)
        stopping = loop.time() - began
        if code is None:
            self.surprises.append(
                f"[{clock(self.elapsed())}] engine {old.number} still running"
                f" {SIGTERM_WAIT:g} s after SIGTERM: killed"
            )
            await old.kill()
        elif code != 0:
            self.surprises.append(
                f"[{clock(self.elapsed())}] engine {old.number} exited {code} after SIGTERM"
            )
        new = await self.engines.start_new()
        return (
            f"engine {old.number} (pid {old.pid}) stopped in {stopping:.1f} s (exit {code});"
            f" engine {new.number} (pid {new.pid}) started"
        )

    async def _pg_restart(self, down_for: float) -> str:
        restart = functools.partial(self.cluster.restart, down_for=down_for)
        self._restart = asyncio.get_running_loop().run_in_executor(None, restart)
        await self._restart
        return f"PostgreSQL stopped (fast), away {down_for:.1f} s, back"


def clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:02d}:{rest:02d}"
