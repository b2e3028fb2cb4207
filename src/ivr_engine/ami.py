"""AMI over panoramisk: the health of Asterisk, and noticing that it restarted.

ARI tells us about our own channels; AMI's ``CoreStatus`` tells whether Asterisk itself is
up, since when, and how many calls it carries. A changed start time means Asterisk
restarted under us: every channel we knew is gone, so the call control resynchronises.
Originate is never done over AMI (panoramisk re-sends unanswered actions after
``FullyBooted``, which could ring a phone twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from panoramisk import Manager

log = structlog.get_logger(__name__)

RestartHook = Callable[[], Awaitable[None]]


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager, closable for good: once closed, the retry it has already
    scheduled (``loop.call_later(..., self.connect)``, no handle kept) does nothing, and a
    connection still being made when it closed is dropped as soon as it is made."""

    closed = False

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self.closed:
            return None
        return super().connect(*args, **kwargs)

    def connection_made(self, f: Any) -> None:
        super().connection_made(f)
        if self.closed:
            super().close()

    def close(self) -> None:
        self.closed = True
        super().close()


class AmiMonitor:
    def __init__(
        self, host: str, port: int, user: str, secret: str, *, interval: float = 10.0
    ) -> None:
        self._manager = _Manager(
            host=host,
            port=port,
            username=user,
            secret=secret,
            ping_delay=interval,
            reconnect_timeout=2,
            events="off",
        )
        self.interval = interval
        self.status: dict[str, Any] = {}
        self.healthy = False
        self.last_error = ""
        self._startup: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._hooks: list[RestartHook] = []

    def on_restart(self, hook: RestartHook) -> None:
        self._hooks.append(hook)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ami-monitor")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            self._manager.close()
        except Exception:
            pass

    async def _run(self) -> None:
        # panoramisk reconnects by itself after a lost connection; we only watch.
        self._manager.connect()
        while True:
            await asyncio.sleep(self.interval if self.healthy else 1.0)
            try:
                if self._manager.protocol is None or not self._manager.authenticated:
                    raise ConnectionError("AMI not connected or not logged in")
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self.healthy or not self.last_error:
                    log.warning("ami.unhealthy", error=repr(err))
                self.healthy = False
                self.last_error = repr(err)

    async def check(self) -> dict[str, Any]:
        reply = await asyncio.wait_for(self._manager.send_action({"Action": "CoreStatus"}), 5)
        message = reply[0] if isinstance(reply, list) else reply
        if message.get("Response") != "Success":
            raise RuntimeError(f"CoreStatus answered {message.get('Response')}")
        self.status = {
            "startup": f"{message.get('CoreStartupDate')} {message.get('CoreStartupTime')}",
            "reload": f"{message.get('CoreReloadDate')} {message.get('CoreReloadTime')}",
            "current_calls": int(message.get("CoreCurrentCalls", 0)),
        }
        self.healthy = True
        self.last_error = ""
        startup = self.status["startup"]
        if self._startup is not None and startup != self._startup:
            log.warning("ami.asterisk_restarted", startup=startup)
            for hook in self._hooks:
                await hook()
        self._startup = startup
        return self.status
