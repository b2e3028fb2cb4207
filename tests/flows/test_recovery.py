"""What the engine does about calls it lost track of: requests a previous engine left active
(Recovery: adopted, or ended without blaming anyone), and the events lost while the ARI
WebSocket was down (AriClient reconnects,
the on_connected hooks run, CallControl.resync asks Asterisk what still exists)."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes import Phone, answers

from .conftest import CLIENT, EXPERT, OTHER_EXPERT, THIRD_CLIENT, StartFlows

pytestmark = pytest.mark.flows


async def test_an_orphan_ringing_the_expert_is_hung_up_and_put_back(flows: StartFlows) -> None:
    h = await flows(connect=False)
    h.fake.phone(EXPERT, answers(press="3"))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert(), state="ringing_expert")
    (old,) = await h.left_calls(request_id, ["expert"])

    await h.connect()  # the hooks recover the orphan before the dispatcher starts

    assert await h.settled(request_id, "refused") == "refused"
    left, new = h.fake.dialled(EXPERT)
    assert left.id == old and left.hung_up_by == "engine"
    heard = [media for play in left.played for media in play]
    assert any(media.endswith("/call_interrupted") for media in heard), heard
    hangup = h.fake.requests("DELETE", f"/channels/{old}")[0]
    assert hangup.at < h.fake.requests("POST", "/channels")[0].at
    # The interrupted attempt is not counted: the new call is attempt 1 again.
    assert [e[1:] for e in await h.events(request_id)][2:4] == [
        ("waiting", "engine_interrupted"),
        ("ringing_expert", "attempt 1"),
    ]
    first, second = (await h.attempts(request_id))[:2]
    assert (first["channel_id"], first["outcome"]) == (old, "interrupted")
    assert second["channel_id"] == new.id


async def test_an_orphan_consultation_still_bridged_is_adopted_and_billed(
    flows: StartFlows,
) -> None:
    h = await flows(connect=False)
    request_id = await h.request(await h.expert(), state="connected")
    expert, client = await h.left_calls(request_id, ["expert", "client"], bridged_for=3)

    await h.connect()  # the previous engine's call is watched again, nobody is cut

    assert request_id in h.dispatcher.tasks
    assert h.fake.channel(expert).hung_up_by is None
    h.fake.hang_up(client)
    assert await h.settled(request_id, "completed") == "completed"
    assert h.fake.channel(expert).hung_up_by == "engine"
    c = await h.consultation(request_id)
    assert c is not None and c["ended_by"] == "client"
    assert 3 <= c["billed_seconds"] <= 5
    assert await h.emails(request_id) == ["consultation_earnings"]
    assert h.fake.requests("POST", "/channels") == []  # nobody is rung again
    assert [a["outcome"] for a in await h.attempts(request_id)] == ["completed", "completed"]


async def test_an_orphan_consultation_that_ended_unwatched_is_billed_to_the_last_sighting(
    flows: StartFlows,
) -> None:
    """The client left while no engine watched and Asterisk's record of it (CEL) is missing:
    the bill ends when an engine last saw the bridge up (1 s ago here), never "now"."""
    h = await flows(connect=False)
    request_id = await h.request(await h.expert(), state="connected")
    expert, client = await h.left_calls(request_id, ["expert", "client"], bridged_for=5)
    h.fake.hang_up(client)  # nobody hears of it

    await h.connect()

    assert await h.settled(request_id, "completed") == "completed"
    assert h.fake.channel(expert).hung_up_by == "engine"
    c = await h.consultation(request_id)
    assert c is not None and c["ended_by"] == "unwatched_estimated"
    assert c["billed_seconds"] == 4
    assert h.fake.requests("DELETE", f"/bridges/ivr-{request_id}-bridge")


async def test_a_bridge_left_by_a_previous_engine_does_not_block_the_retry(
    flows: StartFlows,
) -> None:
    h = await flows(connect=False)
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert(), state="ringing_client")
    await h.left_calls(request_id, ["expert", "client"])
    h.fake.add_bridge(f"ivr-{request_id}-bridge")  # made; the engine stopped before using it

    await h.connect()

    assert await h.settled(request_id, "completed") == "completed"
    deleted = h.fake.requests("DELETE", f"/bridges/ivr-{request_id}-bridge")
    created = h.fake.requests("POST", f"/bridges/ivr-{request_id}-bridge")
    assert deleted[0].at < created[0].at and created[0].status == 200


async def test_socket_drop_mid_call_and_the_client_gone_meanwhile(flows: StartFlows) -> None:
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())
    await h.wait_state(request_id, "connected")
    (expert,), (client,) = h.fake.dialled(EXPERT), h.fake.dialled(CLIENT)

    h.fake.refuse_websockets()
    await h.fake.drop_websockets()
    await h.until(lambda: not h.ari.connected.is_set(), "the engine to see the socket drop")
    h.fake.hang_up(client.id)  # nobody hears of it: its events are lost
    assert [e["type"] for e in h.fake.lost_events] == [
        "ChannelHangupRequest",
        "ChannelLeftBridge",
        "StasisEnd",
        "ChannelDestroyed",
    ]
    assert (await h.row(request_id))["state"] == "connected"

    listed_before = len(h.fake.requests("GET", "/channels"))
    h.fake.refuse_websockets(False)

    assert await h.settled(request_id, "completed") == "completed"
    assert h.ari.connections == 2 and h.hooks_run == 2
    assert len(h.fake.requests("GET", "/channels")) == listed_before + 1  # the resync
    assert expert.hung_up_by == "engine"
    c = await h.consultation(request_id)
    assert c is not None and c["ended_by"] == "client"
    _, k = await h.attempts(request_id)
    assert (k["outcome"], k["hangup_cause"], k["hangup_text"]) == (
        "completed",
        0,
        "lost while disconnected",
    )


async def test_socket_drop_while_ringing_and_the_expert_answers_meanwhile(
    flows: StartFlows,
) -> None:
    h = await flows(ring_timeout=5)
    # Rings until someone answers it (below), then takes the call.
    h.fake.phone(EXPERT, Phone(ring=None, press="1", hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())
    await h.fake.wait_until(
        lambda: [c.state for c in h.fake.dialled(EXPERT)] == ["Ringing"], what="expert ringing"
    )
    (expert,) = h.fake.dialled(EXPERT)

    h.fake.refuse_websockets()
    await h.fake.drop_websockets()
    await h.until(lambda: not h.ari.connected.is_set(), "the engine to see the socket drop")
    h.fake.answer(expert.id)  # its StasisStart is lost
    assert [e["type"] for e in h.fake.lost_events] == ["ChannelStateChange", "StasisStart"]
    h.fake.refuse_websockets(False)

    assert await h.settled(request_id, "completed") == "completed"
    e, k = await h.attempts(request_id)
    assert e["answered_at"] is not None and (e["choice"], e["outcome"]) == ("1", "completed")
    assert k["outcome"] == "completed"


async def test_socket_drop_during_the_offer_ends_it_without_blaming_the_expert(
    flows: StartFlows,
) -> None:
    """A key pressed while the socket was down is lost, so the engine cannot tell "no key"
    from a lost one: it says sorry, and calls again at once, the attempt not counted."""
    h = await flows(digit_timeout=0.2, prompt_tries=2)
    h.fake.phone(EXPERT, answers(hang_up_in_bridge_after=0.1))  # presses nothing by itself
    h.fake.phone(CLIENT, answers())
    h.fake.playback_seconds = 0.2  # time to drop the socket while the offer plays
    request_id = await h.request(await h.expert())
    await h.fake.wait_until(lambda: bool(h.fake.playbacks), what="the offer playing")

    h.fake.refuse_websockets()
    await h.fake.drop_websockets()
    await h.until(lambda: not h.ari.connected.is_set(), "the engine to see the socket drop")
    h.fake.refuse_websockets(False)

    await h.fake.wait_until(lambda: len(h.fake.dialled(EXPERT)) == 2, what="a second call")
    first, second = h.fake.dialled(EXPERT)
    heard = [media for play in first.played for media in play]
    assert heard[-1].endswith("/call_interrupted") and first.hung_up_by == "engine"
    await h.fake.wait_until(lambda: bool(second.played), what="the offer again")
    h.fake.press(second.id, "1")

    assert await h.settled(request_id, "completed") == "completed"
    a, b, _ = await h.attempts(request_id)
    assert a["outcome"] == "interrupted" and (b["choice"], b["outcome"]) == ("1", "completed")
    assert (await h.row(request_id))["attempts"] == 1
    assert await h.emails(request_id) == ["consultation_earnings"]  # no missed-call email


async def test_asterisk_restart_while_the_expert_rings(flows: StartFlows) -> None:
    h = await flows(ring_timeout=5, retry_delay=0.2)
    h.fake.phone(EXPERT, Phone(ring=None))  # rings until the originate's timeout
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert())
    await h.fake.wait_until(
        lambda: [c.state for c in h.fake.dialled(EXPERT)] == ["Ringing"], what="expert ringing"
    )

    await h.fake.go_away(lose_calls=True)  # connections refused; the call died with Asterisk
    await h.until(lambda: not h.ari.connected.is_set(), "the engine to see the socket drop")
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.1))
    await h.fake.come_back()

    assert await h.settled(request_id, "completed", attempts=2) == "completed"
    first, second = h.fake.dialled(EXPERT)
    assert first.hung_up_by == "crash" and second.hung_up_by == "phone"
    a1, a2, _ = await h.attempts(request_id)
    assert (a1["outcome"], a1["hangup_text"]) == ("no_answer", "lost while disconnected")
    assert (a2["outcome"], a2["choice"]) == ("completed", "1")
    assert h.ari.connections == 2


async def test_a_call_dialled_during_the_resync_is_not_taken_for_gone(flows: StartFlows) -> None:
    h = await flows()
    # Bruno is in a consultation: the engine holds legs, so a reconnection resyncs them.
    h.fake.phone(OTHER_EXPERT, answers(press="1"))
    h.fake.phone(THIRD_CLIENT, answers())
    bruno_request = await h.request(await h.expert(OTHER_EXPERT), THIRD_CLIENT)
    await h.wait_state(bruno_request, "connected")
    h.fake.phone(EXPERT, answers(after=0.6, press="1", hang_up_in_bridge_after=0.1))
    h.fake.phone(CLIENT, answers())
    anna = await h.expert(EXPERT)

    h.fake.refuse_websockets()
    await h.fake.drop_websockets()
    await h.until(lambda: not h.ari.connected.is_set(), "the engine to see the socket drop")
    h.fake.slow("GET", "/channels", 0.3)  # the channel list is made at once, arrives late
    h.fake.refuse_websockets(False)
    await h.fake.wait_until(lambda: bool(h.fake.requests("GET", "/channels")), what="resync")
    # Meanwhile a client joins Anna's list: she is dialled before the list reaches the engine.
    request_id = await h.request(anna, CLIENT)

    state = await h.settled(request_id, "completed", "waiting")
    h.fake.hang_up(h.fake.dialled(THIRD_CLIENT)[0].id)
    await h.settled(bruno_request, "completed")
    assert state == "completed"
    (a, _) = await h.attempts(request_id)
    assert (a["outcome"], a["choice"]) == ("completed", "1")
    assert await h.emails(request_id) == ["consultation_earnings"]


async def test_a_second_engine_leaves_a_live_engine_alone_then_takes_over_its_calls(
    flows: StartFlows,
) -> None:
    first = await flows()
    first.fake.phone(EXPERT, answers(press="1"))
    first.fake.phone(CLIENT, answers())
    request_id = await first.request(await first.expert())
    await first.wait_state(request_id, "connected")
    second = await flows(ari_app="ivr-engine-other")

    assert await second.recovery.run(stale_ok=True) == 0  # the first one is alive
    assert request_id not in second.dispatcher.tasks
    (expert,), (client,) = first.fake.dialled(EXPERT), first.fake.dialled(CLIENT)

    await first.die()
    assert expert.hung_up_by is None and client.hung_up_by is None
    assert await second.recovery.run(stale_ok=True) == 1
    # Another application's calls: the survivor subscribed to them to hear their events.
    assert any(
        app == "ivr-engine-other" and f"channel:{client.id}" in sources
        for app, sources in second.fake.subscriptions
    )
    second.fake.hang_up(client.id)
    assert await second.settled(request_id, "completed") == "completed"
    c = await second.consultation(request_id)
    assert c is not None and c["ended_by"] == "client"
    assert expert.hung_up_by == "engine"
    assert (await second.row(request_id))["owner"] == second.engine_id


async def test_socket_drop_as_the_bridge_is_made_asks_the_bridge(flows: StartFlows) -> None:
    """Both parties entered the bridge while the socket was down: the resync asks the bridge,
    and the consultation goes on instead of timing out and being cut."""
    h = await flows()
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, answers())
    h.fake.refuse_websockets()  # the next drop stays down until the test lets it back
    drops: list[asyncio.Future[None]] = []
    h.fake.when(
        "POST",
        "/bridges/*/addChannel",
        lambda: drops.append(asyncio.ensure_future(h.fake.drop_websockets())),
    )
    request_id = await h.request(await h.expert())
    await h.until(lambda: not h.ari.connected.is_set(), "the engine to see the socket drop")
    await asyncio.gather(*drops)
    assert any(e["type"] == "ChannelEnteredBridge" for e in h.fake.lost_events)
    h.fake.refuse_websockets(False)

    await h.wait_state(request_id, "connected")
    h.fake.hang_up(h.fake.dialled(CLIENT)[0].id)
    assert await h.settled(request_id, "completed") == "completed"
    c = await h.consultation(request_id)
    assert c is not None and c["ended_by"] == "client"
    assert h.fake.requests("GET", f"/bridges/ivr-{request_id}-bridge")  # it asked
