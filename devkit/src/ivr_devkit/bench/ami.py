"""A small AMI client for the bench's pure-dialplan side: log in as the sandbox's bench user,
place calls with Originate (async) and collect the ``BenchEnd`` UserEvents of context
``ivr-bench`` (sandbox/conf/extensions.conf)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass


class AmiError(Exception):
    """The AMI refused the bench user or an action."""


@dataclass(frozen=True)
class BenchEnd:
    bench_id: int
    choice: str
    dial: str  # DIALSTATUS (ANSWER, NOANSWER, BUSY…) or EXPERT_<reason> if never answered
    at: float  # time.time() when the event arrived


class BenchAmi:
    def __init__(self, host: str, port: int, user: str, secret: str) -> None:
        self.host, self.port, self.user, self.secret = host, port, user, secret
        self.ends: dict[int, BenchEnd] = {}
        self.refused: dict[int, str] = {}  # bench id -> why Originate was refused
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._login: asyncio.Future[dict[str, str]] | None = None
        self._arrived = asyncio.Event()

    async def connect(self, timeout: float = 10.0) -> None:
        reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout
        )
        self._reader = reader
        await asyncio.wait_for(reader.readline(), timeout)  # the banner
        self._login = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read(), name="bench-ami")
        self._send({"Action": "Login", "Username": self.user, "Secret": self.secret,
                    "Events": "user", "ActionID": "login"})  # fmt: skip
        answer = await asyncio.wait_for(self._login, timeout)
        if answer.get("Response") != "Success":
            raise AmiError(f"AMI login as {self.user}: {answer.get('Message', answer)}")

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                self._send({"Action": "Logoff"})
                self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def originate(
        self, bench_id: int, channel: str, variables: Mapping[str, str], timeout_ms: int
    ) -> None:
        """Ring ``channel``; once answered it runs context ivr-bench with ``variables``."""
        lines = [
            ("Action", "Originate"),
            ("ActionID", f"o{bench_id}"),
            ("Channel", channel),
            ("Context", "ivr-bench"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Timeout", str(timeout_ms)),
            ("Async", "true"),
            ("Variable", f"BENCH_ID={bench_id}"),
            *(("Variable", f"{k}={v}") for k, v in variables.items()),
        ]
        self._write(lines)

    async def wait_ends(self, ids: set[int], deadline: float) -> None:
        """Until every id has ended (or was refused), or ``deadline`` (loop time)."""
        loop = asyncio.get_running_loop()
        while not ids <= (self.ends.keys() | self.refused.keys()):
            left = deadline - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 1.0))

    def _send(self, fields: Mapping[str, str]) -> None:
        self._write(list(fields.items()))

    def _write(self, lines: list[tuple[str, str]]) -> None:
        assert self._writer is not None
        text = "".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n"
        self._writer.write(text.encode())

    async def _read(self) -> None:
        assert self._reader is not None
        message: dict[str, str] = {}
        while True:
            raw = await self._reader.readline()
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line:
                key, _, value = line.partition(":")
                message[key.strip()] = value.strip()
                continue
            if message:
                self._note(message)
            message = {}

    def _note(self, m: dict[str, str]) -> None:
        action = m.get("ActionID", "")
        if action == "login" and self._login is not None and not self._login.done():
            self._login.set_result(m)
        elif action.startswith("o") and m.get("Response") == "Error":
            self.refused[int(action[1:])] = m.get("Message", "refused")
            self._arrived.set()
        elif m.get("Event") == "UserEvent" and m.get("UserEvent") == "BenchEnd":
            with contextlib.suppress(ValueError):
                bench_id = int(m.get("Id", ""))
                self.ends[bench_id] = BenchEnd(
                    bench_id, m.get("Choice", ""), m.get("Dial", ""), time.time()
                )
                self._arrived.set()
