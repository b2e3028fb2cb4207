"""Engines as processes of their own (``python -m ivr_engine serve``), one after another, so
that a fault can kill one for real (SIGKILL, SIGTERM) and the next one takes over.

Each engine gets its own HTTP port and its own JSON log file; every process started here is
kept by PID and ended in :meth:`Engines.close`, whatever state it is in.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

START_TIMEOUT = 60.0


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EngineError(Exception):
    """An engine could not be started."""


class EngineProcess:
    def __init__(self, number: int, env: dict[str, str], log: Path) -> None:
        self.number = number
        self.port = free_tcp_port()
        self.env = {**os.environ, **env, "IVR_HTTP_PORT": str(self.port)}
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start it and return once /healthz says PostgreSQL, ARI and AMI are all up."""
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ivr_engine",
                "serve",
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C is for the fault driver, which ends us
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            while loop.time() < deadline:
                if self.proc.returncode is not None:
                    raise EngineError(f"engine {self.number} exited {self.proc.returncode}")
                try:
                    async with http.get(self.base + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
        await self.kill()
        raise EngineError(f"engine {self.number} not healthy after {timeout:g} s")

    def send(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int | None:
        """Its exit code, or None if it still runs after ``timeout`` seconds."""
        if self.proc is None:
            return None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class Engines:
    """The engine currently serving, and every one started before it."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.started: list[EngineProcess] = []

    @property
    def current(self) -> EngineProcess:
        if not self.started:
            raise EngineError("no engine started yet")
        return self.started[-1]

    @property
    def base(self) -> str:
        return self.current.base

    def alive(self) -> set[int]:
        """The PIDs of the engines running now."""
        return {e.pid for e in self.started if e.running and e.pid is not None}

    async def start_new(self, tries: int = 3) -> EngineProcess:
        """A new engine, healthy; a start that fails is retried (and left in the logs)."""
        error: EngineError | None = None
        for _ in range(tries):
            number = len(self.started) + 1
            engine = EngineProcess(number, self.env, self.workdir / f"engine-{number:02d}.log")
            self.started.append(engine)
            try:
                await engine.start()
                return engine
            except EngineError as err:
                error = err
        assert error is not None
        raise error

    async def close(self) -> None:
        """End every engine still running, by its PID."""
        await asyncio.gather(*(engine.kill() for engine in self.started))
