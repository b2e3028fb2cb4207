"""ARI REST requests carried by the event WebSocket (Asterisk 22.4+, 20.14+).

Asterisk reads ``{"type": "RESTRequest", "request_id", "method", "uri", "query_strings":
[{"name", "value"}], "content_type", "message_body"}`` on the application's WebSocket, runs it
as the HTTP request ``/ari/<uri>`` would run, and answers on the same socket with
``{"type": "RESTResponse", "request_id", "status_code", "reason_phrase", "message_body"}``
(res/ari/ari_websocket_requests.c). The ``uri`` is relative to ``/ari`` with no leading
slash; ``message_body`` is a string (JSON here, ``content_type`` application/json).
Asterisk runs one socket's requests one after the other, in the order they were sent.

:class:`SocketRequests` matches replies to the requests waiting for them by ``request_id``;
when the socket goes, every request still waiting raises :class:`ReplyLost` at once: Asterisk
may or may not have carried it out.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ivr_engine.errors import AriUnavailable

REQUEST_TYPE = "RESTRequest"
RESPONSE_TYPE = "RESTResponse"

SendText = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RestReply:
    status: int
    reason: str
    body: str  # the JSON text of the reply ("" when Asterisk sent none)


class NotSent(Exception):
    """The request never left this process: another transport may carry it."""


class ReplyLost(Exception):
    """The socket closed after the request was sent and before its reply came."""


def request_message(
    request_id: str,
    method: str,
    path: str,
    params: dict[str, str],
    body: dict[str, Any] | None,
) -> str:
    """The RESTRequest text for ``method path`` (``path`` as for HTTP, below ``/ari``)."""
    message: dict[str, Any] = {
        "type": REQUEST_TYPE,
        "request_id": request_id,
        "method": method,
        "uri": path.lstrip("/"),
    }
    if params:
        message["query_strings"] = [{"name": k, "value": v} for k, v in params.items()]
    if body is not None:
        message["content_type"] = "application/json"
        message["message_body"] = json.dumps(body)
    return json.dumps(message)


def reply_of(message: dict[str, Any]) -> RestReply:
    status = message.get("status_code")
    if isinstance(status, bool) or not isinstance(status, int):
        raise ValueError(f"RESTResponse without a status_code: {str(message)[:200]}")
    body = message.get("message_body") or ""
    reason = message.get("reason_phrase") or ""
    return RestReply(status, str(reason), body if isinstance(body, str) else json.dumps(body))


class SocketRequests:
    """The requests sent on one WebSocket and not answered yet."""

    def __init__(self, send: SendText, prefix: str) -> None:
        self._send = send
        self._prefix = prefix  # request ids stay unique across reconnections
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[RestReply]] = {}
        self._closed: str | None = None  # why the socket is gone

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: dict[str, Any] | None,
        timeout: float,
    ) -> RestReply:
        """Send one request and wait for its reply. Raises :class:`NotSent` if it could not
        be written, :class:`ReplyLost` if the socket went before the reply, AriUnavailable
        if no reply came in ``timeout`` s."""
        if self._closed is not None:
            raise NotSent(self._closed)
        request_id = f"{self._prefix}{next(self._ids)}"
        fut: asyncio.Future[RestReply] = asyncio.get_running_loop().create_future()
        # Registered before sending: the reply may be read before send() returns.
        self._pending[request_id] = fut
        try:
            try:
                await self._send(request_message(request_id, method, path, params, body))
            except (ConnectionError, RuntimeError) as err:
                raise NotSent(repr(err)) from err
            try:
                # Not wait_for: on 3.11 it can swallow a cancellation that arrives with the
                # reply, and a cancelled call flow would carry on.
                async with asyncio.timeout(timeout):
                    return await fut
            except TimeoutError as err:
                raise AriUnavailable(
                    f"ARI {method} {path}: no reply on the WebSocket in {timeout}s"
                ) from err
        finally:
            self._pending.pop(request_id, None)

    def resolve(self, message: dict[str, Any]) -> bool:
        """Hand a RESTResponse to its request; False if none waits for it (timed out)."""
        fut = self._pending.pop(str(message.get("request_id", "")), None)
        if fut is None or fut.done():
            return False
        try:
            fut.set_result(reply_of(message))
        except ValueError as err:
            fut.set_exception(AriUnavailable(str(err)))
        return True

    def close(self, why: str) -> None:
        """The socket is gone: later calls raise NotSent, waiting ones ReplyLost."""
        self._closed = why
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ReplyLost(why))
