"""The fake ARI itself, through the engine's own AriClient: the status codes Asterisk gives,
and events that parse into the engine's models (no database)."""

from __future__ import annotations

import pytest

from ivr_engine.errors import AriError, AriNotFound, AriUnavailable
from tests.fakes import FakeAri, answers

from .conftest import APP, CLIENT, EXPERT, RawAri

pytestmark = pytest.mark.flows


def _originate(channel_id: str, number: str = EXPERT, **params: object) -> dict[str, object]:
    return {
        "endpoint": f"PJSIP/{number}@ivr-trunk",
        "app": APP,
        "appArgs": "outbound",
        "channelId": channel_id,
        "timeout": 5,
        **params,
    }


async def test_a_call_answered_then_hung_up_by_the_engine(raw_ari: RawAri) -> None:
    ari, fake = raw_ari.client, raw_ari.fake
    fake.phone(EXPERT, answers())
    channel = await ari.request("POST", "/channels", params=_originate("c-1"))
    assert (channel["id"], channel["state"]) == ("c-1", "Down")

    await raw_ari.wait_for("StasisStart")
    start = raw_ari.events[-1]
    assert getattr(start, "args", None) == ["outbound"]
    assert [c["state"] for c in await ari.request("GET", "/channels")] == ["Up"]

    playback = await ari.request(
        "POST", "/channels/c-1/play/c-1-p1", params={"media": ["sound:a", "sound:b"]}
    )
    assert (playback["target_uri"], playback["state"]) == ("channel:c-1", "queued")
    await raw_ari.wait_for("PlaybackFinished")
    with pytest.raises(AriNotFound):
        await ari.request("GET", "/playbacks/c-1-p1")
    assert fake.channel("c-1").played == [["sound:a", "sound:b"]]

    await ari.request("DELETE", "/channels/c-1", params={"reason": "normal"})
    await raw_ari.wait_for("ChannelDestroyed")
    assert raw_ari.types() == [
        "ChannelStateChange",
        "ChannelStateChange",
        "StasisStart",
        "PlaybackStarted",
        "PlaybackFinished",
        "ChannelHangupRequest",
        "StasisEnd",
        "ChannelDestroyed",
    ]
    destroyed = raw_ari.events[-1]
    assert (getattr(destroyed, "cause", None), getattr(destroyed, "cause_txt", None)) == (
        16,
        "Normal Clearing",
    )
    assert await ari.request("GET", "/channels") == []


async def test_status_codes_as_asterisk_gives_them(raw_ari: RawAri) -> None:
    ari, fake = raw_ari.client, raw_ari.fake
    for method, path in [
        ("GET", "/channels/nope"),
        ("DELETE", "/channels/nope"),
        ("POST", "/channels/nope/answer"),
        ("POST", "/channels/nope/play/p"),
        ("DELETE", "/channels/nope/moh"),
        ("DELETE", "/playbacks/nope"),
        ("DELETE", "/bridges/nope"),
        ("POST", "/bridges/nope/addChannel"),
    ]:
        with pytest.raises(AriNotFound):
            await ari.request(method, path, params={"media": "sound:x", "channel": "x"})

    fake.phone(EXPERT, answers(after=60))  # keeps ringing
    await ari.request("POST", "/channels", params=_originate("c-1"))
    statuses = {}
    cases: list[tuple[str, str, str, dict[str, object]]] = [
        ("duplicate id", "POST", "/channels", _originate("c-1")),
        ("no technology", "POST", "/channels", {**_originate("c-2"), "endpoint": "123"}),
        ("play, ringing", "POST", "/channels/c-1/play/p", {"media": "sound:x"}),
        ("answer, ringing", "POST", "/channels/c-1/answer", {}),
        ("bad reason", "DELETE", "/channels/c-1", {"reason": "whatever"}),
    ]
    for name, method, path, params in cases:
        with pytest.raises(AriError) as err:
            await ari.request(method, path, params=params)
        statuses[name] = err.value.status
    assert statuses == {
        "duplicate id": 409,
        "no technology": 400,
        "play, ringing": 409,  # not in Stasis until answered
        "answer, ringing": 409,
        "bad reason": 400,
    }

    await ari.request("POST", "/bridges/b-1", params={"type": "mixing"})
    for channel, status in [("c-1", 422), ("nope", 400), ("", 400)]:
        with pytest.raises(AriError) as err:
            await ari.request("POST", "/bridges/b-1/addChannel", params={"channel": channel})
        assert err.value.status == status
    with pytest.raises(AriError) as err:  # "create or update": an update may not give a type
        await ari.request("POST", "/bridges/b-1", params={"type": "mixing"})
    assert err.value.status == 500
    await ari.request("DELETE", "/bridges/b-1")
    await ari.request("DELETE", "/channels/c-1")


async def test_an_unknown_number_and_a_refused_originate(raw_ari: RawAri) -> None:
    ari, fake = raw_ari.client, raw_ari.fake
    await ari.request("POST", "/channels", params=_originate("c-1", number="+999"))
    await raw_ari.wait_for("ChannelDestroyed")
    assert getattr(raw_ari.events[-1], "cause", None) == 1  # unallocated number

    fake.fail("POST", "/channels", status=503)
    with pytest.raises(AriError) as err:
        await ari.request("POST", "/channels", params=_originate("c-2", number=CLIENT))
    assert err.value.status == 503
    assert [c.status for c in fake.requests("POST", "/channels")] == [200, 503]


async def test_authentication(fake_ari: FakeAri) -> None:
    wrong = RawAri(fake_ari, password="wrong")
    await wrong.client.start()
    try:
        with pytest.raises(AriError) as err:
            await wrong.client.request("GET", "/channels")
        assert err.value.status == 401
        with pytest.raises(AriUnavailable):
            await wrong.client.wait_connected(0.3)  # the WebSocket is refused too
    finally:
        await wrong.client.close()
    assert fake_ari.websocket_connections == 0


async def test_going_away_and_coming_back(raw_ari: RawAri) -> None:
    ari, fake = raw_ari.client, raw_ari.fake
    await fake.go_away()
    with pytest.raises(AriUnavailable):
        await ari.request("GET", "/channels")
    await fake.come_back()
    assert await ari.request("GET", "/channels") == []
    await ari.wait_connected(5)
    await fake.wait_until(lambda: fake.websocket_connections == 2, what="the socket again")
    assert ari.connections == 2
