"""ARI REST requests carried by the event WebSocket, against the fake ARI (a real aiohttp
server): which transport carries each request, the same errors as HTTP, timeouts, a socket
that drops with requests waiting, and an Asterisk that does not take requests on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ivr_engine.ari.client import AriClient
from ivr_engine.errors import AriError, AriNotFound, AriUnavailable
from tests.fakes import FakeAri, answers

from .conftest import APP, ARI_PASSWORD, ARI_USER, EXPERT, RawAri


def _originate(channel_id: str) -> dict[str, object]:
    endpoint = f"PJSIP/{EXPERT}@ivr-trunk"
    return {"endpoint": endpoint, "app": APP, "appArgs": "outbound", "channelId": channel_id}


async def _client(fake: FakeAri, **kwargs: float | bool) -> AriClient:
    """A started client whose first socket is set up (probe passed or not, hooks run)."""
    client = AriClient(fake.url, ARI_USER, ARI_PASSWORD, APP, **kwargs)  # type: ignore[arg-type]
    client.only_events(["StasisStart", "ChannelDestroyed"])
    set_up = asyncio.Event()

    async def hook() -> None:
        set_up.set()

    client.on_connected(hook)  # hooks run once the transport is chosen
    await client.start()
    await asyncio.wait_for(set_up.wait(), 5)
    return client


@pytest.fixture
async def socket_ari(fake_ari: FakeAri) -> AsyncIterator[AriClient]:
    client = await _client(fake_ari)
    try:
        assert client.transport == "websocket"
        yield client
    finally:
        await client.close()


async def test_requests_and_their_errors_travel_on_the_socket(
    socket_ari: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.phone(EXPERT, answers())
    # The probe was the event filter itself, on the socket.
    (probe,) = fake_ari.requests("PUT", f"/applications/{APP}/eventFilter")
    assert probe.via == "websocket"
    assert fake_ari.event_filters[APP] == {"StasisStart", "ChannelDestroyed", "RESTResponse"}

    channel = await socket_ari.request("POST", "/channels", params=_originate("c-1"))
    assert channel["id"] == "c-1"
    with pytest.raises(AriNotFound) as missing:
        await socket_ari.request("GET", "/channels/nobody")
    assert missing.value.status == 404
    with pytest.raises(AriError) as taken:
        await socket_ari.request("POST", "/channels", params=_originate("c-1"))
    assert taken.value.status == 409 and not isinstance(taken.value, AriNotFound)
    fake_ari.fail("DELETE", "/channels/c-1", status=500)
    with pytest.raises(AriError) as failed:
        await socket_ari.request("DELETE", "/channels/c-1")
    assert failed.value.status == 500
    assert await socket_ari.request("DELETE", "/channels/c-1") is None  # 204

    calls = [c for c in fake_ari.calls if c.path != f"/applications/{APP}/eventFilter"]
    assert [c.via for c in calls] == ["websocket"] * 5
    assert [c.status for c in calls] == [200, 404, 409, 500, 204]
    assert socket_ari.socket_requests == 5


async def test_concurrent_requests_get_their_own_replies(
    socket_ari: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.phone(EXPERT, answers())
    ids = [f"c-{n}" for n in range(8)]
    made = await asyncio.gather(
        *(socket_ari.request("POST", "/channels", params=_originate(i)) for i in ids)
    )
    assert [m["id"] for m in made] == ids
    got = await asyncio.gather(
        *(socket_ari.request("GET", f"/channels/{i}") for i in reversed(ids))
    )
    assert [g["id"] for g in got] == list(reversed(ids))


async def test_a_reply_too_late_is_a_timeout_and_the_socket_stays_in_use(
    socket_ari: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.slow("GET", "/channels", 0.5)
    with pytest.raises(AriUnavailable, match="no reply"):
        await socket_ari.request("GET", "/channels", timeout=0.1)
    assert await socket_ari.request("GET", "/bridges") == []  # answered after the late one
    assert socket_ari.transport == "websocket"


async def test_a_request_waiting_when_the_socket_drops_is_sent_again_over_http(
    socket_ari: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.phone(EXPERT, answers())
    fake_ari.slow("POST", "/channels", 0.3)  # carried out at once, its reply held back
    fake_ari.refuse_websockets()
    pending = asyncio.create_task(socket_ari.request("POST", "/channels", params=_originate("c-1")))
    await fake_ari.wait_until(
        lambda: bool(fake_ari.requests("POST", "/channels")), what="originate"
    )
    await fake_ari.drop_websockets()

    # Sent again over HTTP: 409 (the channel id is taken, by this very request) means done.
    assert await asyncio.wait_for(pending, 5) is None
    first, again = fake_ari.requests("POST", "/channels")
    assert (first.via, again.via, again.status) == ("websocket", "http", 409)
    assert [c.id for c in fake_ari.dialled(EXPERT)] == ["c-1"]  # rung once
    # Meanwhile the socket is down: requests use HTTP.
    assert socket_ari.transport == "http"
    await socket_ari.request("GET", "/channels")
    assert fake_ari.calls[-1].via == "http"


async def test_a_request_waiting_when_asterisk_goes_away_fails(
    socket_ari: AriClient, fake_ari: FakeAri
) -> None:
    fake_ari.slow("GET", "/channels", 0.3)
    pending = asyncio.create_task(socket_ari.request("GET", "/channels"))
    await fake_ari.wait_until(
        lambda: bool(fake_ari.requests("GET", "/channels")), what="the request"
    )
    await fake_ari.go_away()
    with pytest.raises(AriUnavailable):
        await asyncio.wait_for(pending, 5)


async def test_socket_back_requests_go_on_it_again(
    socket_ari: AriClient, fake_ari: FakeAri
) -> None:
    await fake_ari.drop_websockets()
    await asyncio.wait_for(socket_ari.next_reconnection(), 5)
    assert socket_ari.transport == "websocket"
    await socket_ari.request("GET", "/channels")
    assert fake_ari.calls[-1].via == "websocket"


async def test_an_asterisk_without_requests_on_the_socket_gets_http(fake_ari: FakeAri) -> None:
    fake_ari.ignore_socket_requests()  # older than 22.4: reads them, answers nothing
    client = await _client(fake_ari, probe_timeout=0.2)
    try:
        await fake_ari.wait_until(
            lambda: len(fake_ari.requests("PUT", f"/applications/{APP}/eventFilter")) == 1,
            what="the event filter over HTTP",
        )
        assert fake_ari.event_filters[APP] == {"StasisStart", "ChannelDestroyed", "RESTResponse"}
        assert client.transport == "http"
        assert await client.request("GET", "/channels") == []
        assert [c.via for c in fake_ari.calls] == ["http", "http"]
    finally:
        await client.close()


async def test_the_switch_keeps_every_request_on_http(fake_ari: FakeAri) -> None:
    client = await _client(fake_ari, rest_over_websocket=False)
    try:
        await client.request("GET", "/channels")
        await fake_ari.wait_until(lambda: len(fake_ari.calls) == 2, what="filter and request")
        assert client.transport == "http"
        assert [c.via for c in fake_ari.calls] == ["http", "http"]
    finally:
        await client.close()


async def test_events_of_the_hooks_time_wait_for_them_then_arrive_in_order(
    raw_ari: RawAri, fake_ari: FakeAri
) -> None:
    ari = raw_ari.client
    fake_ari.phone(EXPERT, answers(after=0.0))
    seen_in_hook: list[int] = []

    async def hook() -> None:
        if ari.connections < 2:
            return  # the first connection's setup may still be on its way
        # The hook's own requests travel on the socket it is the hook of.
        await ari.request("POST", "/channels", params=_originate("c-9"))
        await fake_ari.wait_until(lambda: fake_ari.channel("c-9").in_stasis, what="answered")
        seen_in_hook.append(len(raw_ari.events))

    ari.on_connected(hook)
    before = len(raw_ari.events)
    await fake_ari.drop_websockets()
    await asyncio.wait_for(ari.next_reconnection(), 5)
    assert seen_in_hook == [before]  # nothing delivered while the hook ran
    assert raw_ari.types()[before:] == ["ChannelStateChange", "ChannelStateChange", "StasisStart"]
    assert fake_ari.requests("POST", "/channels")[0].via == "websocket"


async def test_the_filter_lets_the_replies_through_even_over_an_older_one(
    fake_ari: FakeAri,
) -> None:
    # Asterisk passes replies through the application's event filter, set here by the
    # probe itself before its reply goes out; an older engine's filter is replaced.
    fake_ari.event_filters[APP] = {"StasisStart"}
    client = await _client(fake_ari, probe_timeout=0.5)
    try:
        assert client.transport == "websocket"
        (put,) = fake_ari.requests("PUT", f"/applications/{APP}/eventFilter")
        assert put.via == "websocket"
        assert fake_ari.event_filters[APP] == {"StasisStart", "ChannelDestroyed", "RESTResponse"}
        assert await client.request("GET", "/channels") == []
        assert fake_ari.calls[-1].via == "websocket"
    finally:
        await client.close()
