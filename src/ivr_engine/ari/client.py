"""ARI REST calls and the event WebSocket of one Stasis application.

The WebSocket is kept open by :class:`AriClient` itself: when it drops (Asterisk restarts,
the socket times out) it reconnects with capped exponential backoff and then calls every
``on_connected`` hook, so that the engine can re-synchronise what it owns — Asterisk drops
the events of the gap.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import structlog
from pydantic import ValidationError

from ivr_engine.ari.models import Event, parse_event
from ivr_engine.errors import AriError, AriNotFound, AriUnavailable

log = structlog.get_logger(__name__)

EventHandler = Callable[[Event], None]
ConnectedHook = Callable[[], Awaitable[None]]


class ConnectionState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    CLOSED = "closed"


class Backoff:
    """Capped exponential backoff: 0.2 s, 0.4 s, 0.8 s ... up to ``cap``."""

    def __init__(self, first: float = 0.2, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * 2.0**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class AriClient:
    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        app: str,
        *,
        request_timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None
        self._ws_task: asyncio.Task[None] | None = None
        self._handlers: list[EventHandler] = []
        self._connected_hooks: list[ConnectedHook] = []
        self._backoff = Backoff()
        self.state = ConnectionState.IDLE
        self.connected = asyncio.Event()
        self.connections = 0  # how many times the WebSocket was (re)opened
        self._reconnected = asyncio.Event()  # set (and replaced) at each re-opening
        self._wanted: list[str] | None = None  # event types Asterisk should send (None: all)

    # -- lifecycle -------------------------------------------------------------------
    def on_event(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def on_connected(self, hook: ConnectedHook) -> None:
        self._connected_hooks.append(hook)

    def only_events(self, types: Iterable[str]) -> None:
        """Ask Asterisk to send this application only these event types (an ARI event
        filter, set at each connection): the others cost Asterisk a JSON dump and a write,
        and this process a parse, for nothing."""
        self._wanted = sorted(set(types))

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        if self._ws_task is None:
            self._ws_task = asyncio.create_task(self._run_ws(), name=f"ari-ws-{self.app}")

    async def next_reconnection(self) -> None:
        """Return once the WebSocket has been re-opened after now, its hooks (the resync)
        run: events of the gap were lost."""
        await self._reconnected.wait()

    async def wait_connected(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError as err:
            raise AriUnavailable(f"ARI WebSocket not connected after {timeout}s") from err

    async def close(self) -> None:
        """Stop the WebSocket and the HTTP session; safe to call twice."""
        self.state = ConnectionState.CLOSED
        task, self._ws_task = self._ws_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self.connected.clear()

    # -- REST ------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        if self._session is None:
            raise AriUnavailable("ARI client is not started")
        url = f"{self.base_url}{path}"
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self._session.request(
                method,
                url,
                params=clean,
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
            ) as resp:
                text = await resp.text()
                if resp.status == 404:
                    raise AriNotFound(method, path, resp.status, text)
                if resp.status >= 400:
                    raise AriError(method, path, resp.status, text)
                if not text:
                    return None
                return json.loads(text)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise AriUnavailable(f"ARI {method} {path}: {err!r}") from err

    # -- the WebSocket -----------------------------------------------------------------
    async def _run_ws(self) -> None:
        ws_url = self.base_url.replace("http", "ws", 1) + "/events"
        params = {"app": self.app, "subscribeAll": "false"}
        assert self._session is not None
        while self.state is not ConnectionState.CLOSED:
            self.state = ConnectionState.CONNECTING
            try:
                async with self._session.ws_connect(
                    ws_url,
                    params=params,
                    heartbeat=20,
                    timeout=aiohttp.ClientWSTimeout(ws_close=10),
                ) as ws:
                    self.state = ConnectionState.CONNECTED
                    self.connections += 1
                    self._backoff.reset()
                    self.connected.set()
                    log.info("ari.connected", app=self.app, connections=self.connections)
                    await self._filter_events()
                    await self._run_hooks()
                    if self.connections > 1:
                        reconnected, self._reconnected = self._reconnected, asyncio.Event()
                        reconnected.set()
                    async for msg in ws:
                        if msg.type is aiohttp.WSMsgType.TEXT:
                            self._dispatch(msg.data)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                log.warning("ari.connect_failed", error=repr(err))
            self.connected.clear()
            if self.state is ConnectionState.CLOSED:
                break
            self.state = ConnectionState.BACKOFF
            delay = self._backoff.next_delay()
            log.warning("ari.disconnected", retry_in=delay)
            await asyncio.sleep(delay)

    async def _filter_events(self) -> None:
        if self._wanted is None:
            return
        body = {"allowed": [{"type": name} for name in self._wanted]}
        try:
            await self.request("PUT", f"/applications/{self.app}/eventFilter", body=body)
        except (AriError, AriUnavailable) as err:
            # An Asterisk without event filters sends everything: slower, not wrong.
            log.warning("ari.event_filter_failed", error=str(err)[:300])

    async def _run_hooks(self) -> None:
        for hook in self._connected_hooks:
            try:
                await hook()
            except Exception:
                log.exception("ari.connected_hook_failed")

    def _dispatch(self, raw: str) -> None:
        try:
            event = parse_event(json.loads(raw))
        except (ValueError, ValidationError) as err:
            log.warning("ari.bad_event", error=str(err)[:300])
            return
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("ari.handler_failed", event_type=event.type)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
