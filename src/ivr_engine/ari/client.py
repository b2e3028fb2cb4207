"""ARI REST calls and the event WebSocket of one Stasis application.

The WebSocket is kept open by :class:`AriClient` itself: when it drops (Asterisk restarts,
the socket times out) it reconnects with capped exponential backoff and then calls every
``on_connected`` hook, so that the engine can re-synchronise what it owns — Asterisk drops
the events of the gap. Events that arrive while the hooks run are held back and delivered,
in order, once they are done.

REST requests travel on that same WebSocket when Asterisk takes them there (22.4+, 20.14+;
see :mod:`ivr_engine.ari.socket_requests`): one frame each way instead of an HTTP request,
which costs both processes less. Each new socket is first tried with one request (the event
filter, or a ping); an Asterisk that does not answer it in ``probe_timeout`` s, or refuses the
message, gets HTTP for the life of that socket. While no socket is usable (connecting, gone),
and when a request could not be written, requests go over HTTP; one whose reply was lost with
the socket is sent again over HTTP (a 409 to a POST then means "already done"). Either way
the caller sees
the same results and errors: AriNotFound for 404, AriError for any other status >= 400,
AriUnavailable when no reply came.
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

from ivr_engine.ari.models import Event, parse_event
from ivr_engine.ari.socket_requests import (
    RESPONSE_TYPE,
    NotSent,
    ReplyLost,
    RestReply,
    SocketRequests,
)
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
        rest_over_websocket: bool = True,
        probe_timeout: float = 2.0,
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
        self._wanted_types: frozenset[str] | None = None
        self.rest_over_websocket = rest_over_websocket  # False: always HTTP
        self._probe_timeout = probe_timeout
        # The requests of the open socket; used by request() once the probe has passed.
        self._socket: SocketRequests | None = None
        self._socket_ok = False
        self._held: list[dict[str, Any]] | None = None  # events held while the hooks run
        self.socket_requests = 0  # requests answered on the WebSocket (for tests, metrics)

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
        self._wanted_types = frozenset(self._wanted)

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
        self._drop_socket("the ARI client is closing")
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self.connected.clear()

    # -- REST ------------------------------------------------------------------------
    @property
    def transport(self) -> str:
        """Where the next request goes: "websocket" or "http"."""
        return "websocket" if self._socket is not None and self._socket_ok else "http"

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
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        socket = self._socket
        if socket is not None and self._socket_ok:
            try:
                reply = await socket.call(method, path, clean, body, timeout or self._timeout)
            except NotSent:
                pass  # the socket is going away: HTTP carries it
            except ReplyLost:
                return await self._resend(method, path, clean, body, timeout or self._timeout)
            else:
                self.socket_requests += 1
                return _result(method, path, reply.status, reply.body)
        return await self._http(method, path, clean, body, timeout or self._timeout)

    async def _resend(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: dict[str, Any] | None,
        timeout: float,
    ) -> Any:
        """Send again over HTTP a request whose reply was lost with the socket. Asterisk may
        have carried it out already: then a POST (originate with our channel id, play with
        our playback id, continue, addChannel...) is refused with 409 Conflict, which here
        means done. A DELETE answers 404, which callers already take as gone."""
        log.info("ari.resend_over_http", method=method, path=path)
        try:
            return await self._http(method, path, params, body, timeout)
        except AriError as err:
            if method == "POST" and err.status == 409:
                log.info("ari.resent_already_done", method=method, path=path)
                return None
            raise

    async def _http(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: dict[str, Any] | None,
        timeout: float,
    ) -> Any:
        assert self._session is not None
        try:
            async with self._session.request(
                method,
                f"{self.base_url}{path}",
                params=params,
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                text = await resp.text()
                return _result(method, path, resp.status, text)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise AriUnavailable(f"ARI {method} {path}: {err!r}") from err

    # -- the WebSocket -----------------------------------------------------------------
    async def _run_ws(self) -> None:
        ws_url = self.base_url.replace("http", "ws", 1) + "/events"
        params = {"app": self.app, "subscribeAll": "false"}
        assert self._session is not None
        while self.state is not ConnectionState.CLOSED:
            self.state = ConnectionState.CONNECTING
            setup: asyncio.Task[None] | None = None
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
                    self._held = []
                    self._socket_ok = False
                    if self.rest_over_websocket:
                        self._socket = SocketRequests(ws.send_str, f"{self.connections}-")
                    # Set up (event filter, hooks) while this task reads the socket: the
                    # replies of requests sent on it arrive here.
                    setup = asyncio.create_task(self._setup(), name=f"ari-setup-{self.app}")
                    try:
                        async for msg in ws:
                            if msg.type is aiohttp.WSMsgType.TEXT:
                                self._receive(msg.data)
                            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                                break
                    finally:
                        self._drop_socket("the event WebSocket closed")
                try:
                    await setup
                except Exception:  # its parts log their own failures: this is a bug
                    log.exception("ari.setup_failed")
            except asyncio.CancelledError:
                self._drop_socket("the ARI client is closing")
                if setup is not None:
                    setup.cancel()
                    await asyncio.gather(setup, return_exceptions=True)
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

    def _drop_socket(self, why: str) -> None:
        socket, self._socket = self._socket, None
        self._socket_ok = False
        if socket is not None:
            socket.close(why)

    async def _setup(self) -> None:
        """A socket is open: choose the REST transport (setting the event filter), run the
        hooks, then deliver the events that arrived meanwhile."""
        try:
            if self._socket is not None:
                socket = self._socket
                ok = await self._probe(socket)
                self._socket_ok = ok and self._socket is socket  # not dropped meanwhile
            else:
                await self._filter_events()
            await self._run_hooks()
        finally:
            held, self._held = self._held, None
            for data in held or ():
                self._dispatch(data)
        if self.connections > 1:
            reconnected, self._reconnected = self._reconnected, asyncio.Event()
            reconnected.set()

    def _filter_request(self) -> tuple[str, str, dict[str, Any] | None]:
        if self._wanted is None:
            return PING
        # Asterisk passes the replies to requests on the socket through the same filter
        # (ari_websocket_send_event): without their type they would be dropped.
        allowed = sorted({*self._wanted, RESPONSE_TYPE})
        body = {"allowed": [{"type": name} for name in allowed]}
        return "PUT", f"/applications/{self.app}/eventFilter", body

    async def _probe(self, socket: SocketRequests) -> bool:
        """Whether Asterisk answers REST requests on this socket. The probe is the event
        filter's request itself (or a ping): one round trip, not two."""
        method, path, body = self._filter_request()
        try:
            reply = await socket.call(method, path, {}, body, self._probe_timeout)
        except (NotSent, AriUnavailable) as err:
            log.info("ari.rest_over_websocket_off", reason=str(err)[:200])
            await self._filter_events()
            return False
        if _refused_request(reply):
            log.info("ari.rest_over_websocket_off", reason=reply.body[:200])
            if body is not None:
                await self._filter_events()
            return False
        if body is not None and reply.status >= 300:
            # An Asterisk without event filters sends everything: slower, not wrong.
            log.warning("ari.event_filter_failed", status=reply.status, error=reply.body[:300])
        log.info("ari.rest_over_websocket_on", app=self.app)
        return True

    async def _filter_events(self) -> None:
        if self._wanted is None:
            return
        method, path, body = self._filter_request()
        try:
            await self._http(method, path, {}, body, self._timeout)
        except (AriError, AriUnavailable) as err:
            # An Asterisk without event filters sends everything: slower, not wrong.
            log.warning("ari.event_filter_failed", error=str(err)[:300])

    async def _run_hooks(self) -> None:
        for hook in self._connected_hooks:
            try:
                await hook()
            except Exception:
                log.exception("ari.connected_hook_failed")

    def _receive(self, raw: str) -> None:
        """One text frame: a reply to a request, or an event."""
        try:
            data = json.loads(raw)
        except ValueError as err:
            log.warning("ari.bad_event", error=str(err)[:300])
            return
        if not isinstance(data, dict):
            log.warning("ari.bad_event", error=f"not an object: {raw[:200]}")
            return
        if data.get("type") == RESPONSE_TYPE:
            if self._socket is None or not self._socket.resolve(data):
                log.info("ari.late_reply", request_id=data.get("request_id"))
            return
        if self._wanted_types is not None and data.get("type") not in self._wanted_types:
            return  # the event filter did not take (an older Asterisk): nobody routes it
        if self._held is not None:
            self._held.append(data)
        else:
            self._dispatch(data)

    def _dispatch(self, data: dict[str, Any]) -> None:
        if not self._handlers:
            return
        try:
            event = parse_event(data)
        except ValueError as err:
            log.warning("ari.bad_event", error=str(err)[:300], event_type=data.get("type"))
            return
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("ari.handler_failed", event_type=event.type)


PING: tuple[str, str, None] = ("GET", "/asterisk/ping", None)


def _result(method: str, path: str, status: int, text: str) -> Any:
    """A reply as the callers see it, whichever way it came."""
    if status == 404:
        raise AriNotFound(method, path, status, text)
    if status >= 400:
        raise AriError(method, path, status, text)
    if not text:
        return None
    return json.loads(text)


# What res/ari/ari_websocket_requests.c answers to a message it cannot take as a request.
_REFUSALS = ("Unknown request type.", "No 'type' property.")


def _refused_request(reply: RestReply) -> bool:
    return reply.status == 400 and any(r in reply.body for r in _REFUSALS)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
