"""The bookkeeping of ARI requests on the event WebSocket: the message Asterisk reads
(res/ari/ari_websocket_requests.c), replies matched by request_id whatever their order, a
socket that closes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ivr_engine.ari.socket_requests import (
    NotSent,
    ReplyLost,
    SocketRequests,
    reply_of,
    request_message,
)
from ivr_engine.errors import AriUnavailable


def test_the_message_is_what_asterisk_parses() -> None:
    message = json.loads(
        request_message(
            "3-7",
            "PUT",
            "/applications/app/eventFilter",
            {"a": "1"},
            {"allowed": [{"type": "StasisStart"}]},
        )
    )
    assert message == {
        "type": "RESTRequest",
        "request_id": "3-7",
        "method": "PUT",
        "uri": "applications/app/eventFilter",  # below /ari, no leading slash
        "query_strings": [{"name": "a", "value": "1"}],
        "content_type": "application/json",
        "message_body": '{"allowed": [{"type": "StasisStart"}]}',  # a string, not an object
    }
    bare = json.loads(request_message("1", "GET", "/channels", {}, None))
    assert bare == {"type": "RESTRequest", "request_id": "1", "method": "GET", "uri": "channels"}


def test_a_reply_without_status_is_refused() -> None:
    with pytest.raises(ValueError):
        reply_of({"type": "RESTResponse", "request_id": "1"})
    reply = reply_of({"status_code": 204, "reason_phrase": "No Content"})
    assert (reply.status, reply.reason, reply.body) == (204, "No Content", "")


class Wire:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.broken = False
        self.written = asyncio.Event()

    async def send(self, text: str) -> None:
        if self.broken:
            raise ConnectionResetError("Cannot write to closing transport")
        self.sent.append(json.loads(text))
        self.written.set()


async def _sent(wire: Wire, count: int) -> None:
    async with asyncio.timeout(1):
        while len(wire.sent) < count:
            wire.written.clear()
            await wire.written.wait()


async def test_replies_out_of_order_reach_their_own_request() -> None:
    wire = Wire()
    requests = SocketRequests(wire.send, "1-")
    calls = [
        asyncio.ensure_future(requests.call("GET", f"/channels/c{n}", {}, None, 5))
        for n in range(3)
    ]
    await _sent(wire, 3)
    assert [m["request_id"] for m in wire.sent] == ["1-1", "1-2", "1-3"]
    for message in reversed(wire.sent):
        body = json.dumps({"id": message["uri"]})
        assert requests.resolve(
            {"request_id": message["request_id"], "status_code": 200, "message_body": body}
        )
    replies = await asyncio.gather(*calls)
    assert [json.loads(r.body)["id"] for r in replies] == [f"channels/c{n}" for n in range(3)]
    assert requests.pending == 0
    assert not requests.resolve({"request_id": "1-1", "status_code": 200})  # twice: ignored


async def test_no_reply_in_time_is_unavailable_and_forgotten() -> None:
    wire = Wire()
    requests = SocketRequests(wire.send, "1-")
    with pytest.raises(AriUnavailable, match="no reply"):
        await requests.call("GET", "/channels", {}, None, 0.01)
    assert requests.pending == 0
    assert not requests.resolve({"request_id": "1-1", "status_code": 200})  # late: dropped


async def test_a_closing_socket_loses_the_waiting_and_refuses_the_next() -> None:
    wire = Wire()
    requests = SocketRequests(wire.send, "1-")
    waiting = asyncio.ensure_future(requests.call("DELETE", "/channels/c1", {}, None, 5))
    await _sent(wire, 1)
    requests.close("gone")
    with pytest.raises(ReplyLost):
        await waiting
    with pytest.raises(NotSent):
        await requests.call("GET", "/channels", {}, None, 5)


async def test_a_write_that_fails_is_not_sent() -> None:
    wire = Wire()
    wire.broken = True
    requests = SocketRequests(wire.send, "1-")
    with pytest.raises(NotSent):
        await requests.call("GET", "/channels", {}, None, 5)
    assert requests.pending == 0
