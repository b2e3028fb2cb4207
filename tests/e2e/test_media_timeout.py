"""A phone that goes silent without hanging up: Asterisk's rtp_timeout hangs its leg up.

The client's phone answers, presses a key (its last RTP packets), then sends nothing at all,
no RTP and no BYE, as a phone that lost its network would. Its leg goes through the
sandbox's endpoint with a 5 s rtp_timeout. The test asserts what src/ivr_engine/domain/
media.py states: who hung up, with which cause in ARI, CEL and the engine's records, what
Asterisk logged, and that "hangup time - rtp_timeout" is when the media stopped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest

from ivr_devkit.simphones import HELLO, PhoneBook, answer
from ivr_engine.domain.media import (
    RTP_TIMEOUT_CAUSE,
    SOFTHANGUP_DEV,
    SOFTHANGUP_EXPLICIT,
    media_stopped_at,
)
from ivr_engine.store import cel

from .conftest import AriObserver, Harness, cel_logged

pytestmark = pytest.mark.e2e

EXPERT = "+390600000151"
CLIENT = "+393330000252"
RTP_TIMEOUT = 5  # asterisk-conf/sandbox/pjsip.conf, [phone-network-rtp-timeout]
ENDPOINT = "phone-network-rtp-timeout"
# During the client's "connecting you" announcement (about 1.2 s): the leg is bridged before
# Asterisk gives up on it, about RTP_TIMEOUT later.
KEY_AFTER_MS = 400
PRESS_LAST_PACKET = timedelta(milliseconds=140)  # simphones.dtmf_pcap: 8 updates, 20 ms apart
# Asterisk counts whole seconds (domain/media.py), plus room for SIPp's own scheduling.
WHOLE_SECONDS_SLACK = timedelta(seconds=1.3)


async def test_a_silent_leg_is_hung_up_by_asterisk_with_cause_44(
    harness: Callable[..., Awaitable[Harness]], phones: PhoneBook, cel_pool: asyncpg.Pool
) -> None:
    # No acceptance prompt: the expert answers, says hello (answering-machine detection) and
    # the client is called.
    await phones.phone(EXPERT, answer(greeting=HELLO))
    client = await phones.phone(CLIENT, answer("5", dtmf_delay_ms=KEY_AFTER_MS))
    routes = phones.routes()
    routes[CLIENT] = client.dial_string.replace("PJSIP/phone-network/", f"PJSIP/{ENDPOINT}/")
    h = await harness(dial_routes=routes, rtp_timeout=RTP_TIMEOUT)
    async with AriObserver(h.info, "ChannelHangupRequest", "ChannelDestroyed") as ari:
        request_id = await h.request(await h.expert(EXPERT, ivr=False), CLIENT)
        assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
        phone = await client.finished(20)
        # The observer's own socket may deliver Asterisk's events after the engine's did.
        legs = {a["leg"]: a["channel_id"] for a in await h.attempts(request_id)}
        await ari.wait_for("ChannelDestroyed", legs["client"])
        await ari.wait_for("ChannelHangupRequest", legs["expert"])

    # Asterisk hung the phone up; the phone never did.
    assert phone.ok, phone
    assert "BYE" in phone.received and "BYE" not in phone.sent, phone
    c = await h.pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    # The client's media stopped (its last key) before the bridge began: nothing is billed.
    assert c["ended_by"] == "client" and c["billed_seconds"] == 0
    assert c["bridge_end"] == c["bridge_start"]
    client_id = c["client_channel_id"]

    # ARI: a soft hangup whose "cause" is the AST_SOFTHANGUP_DEV flag, then the real cause.
    request = ari.of("ChannelHangupRequest", client_id)[0]
    assert (request["cause"], request.get("soft")) == (SOFTHANGUP_DEV, True), request
    # (The engine then hangs the expert up over ARI: another flag in that field.)
    hung_up = ari.of("ChannelHangupRequest", c["expert_channel_id"])[0]
    assert (hung_up["cause"], hung_up.get("soft")) == (SOFTHANGUP_EXPLICIT, True), hung_up
    (destroyed,) = ari.of("ChannelDestroyed", client_id)
    assert destroyed["cause"] == RTP_TIMEOUT_CAUSE, destroyed
    assert destroyed["cause_txt"] == "Requested channel not available"
    attempts = await h.attempts(request_id)
    (leg,) = [a for a in attempts if a["channel_id"] == client_id]
    assert leg["hangup_cause"] == RTP_TIMEOUT_CAUSE and leg["dtmf"] == "5"

    # Asterisk's log says why.
    name = destroyed["channel"]["name"]
    assert name.startswith(f"PJSIP/{ENDPOINT}-")
    log = (h.info.root / "var/log/asterisk/messages.log").read_text(errors="replace")
    expected = f"Disconnecting channel '{name}' for lack of audio RTP activity in {RTP_TIMEOUT}"
    assert expected in log

    # CEL has the cause too, and the hangup time tells when the media stopped.
    since = attempts[0]["started_at"]
    await cel_logged(cel_pool, client_id, since)
    end = await cel.channel_end(cel_pool, client_id, since)
    assert end is not None and end.cause == RTP_TIMEOUT_CAUSE
    (ack,) = [m for m in phone.messages if m.direction == "received" and m.kind == "ACK"]
    assert ack.at is not None
    last_rtp = ack.at + timedelta(milliseconds=KEY_AFTER_MS) + PRESS_LAST_PACKET
    stopped = media_stopped_at(end.at, end.cause, RTP_TIMEOUT)
    bridge_end = await cel.bridge_end(cel_pool, [c["expert_channel_id"], client_id], since)
    assert bridge_end is not None
    engine_gap_ms = (bridge_end - c["bridge_end"]).total_seconds() * 1000
    print(
        f"\nhangup − last RTP: {(end.at - last_rtp).total_seconds():.3f} s"
        f" (rtp_timeout {RTP_TIMEOUT} s); media stopped (estimate) − last RTP:"
        f" {(stopped - last_rtp).total_seconds():+.3f} s;"
        f" CEL bridge end − bill end: {engine_gap_ms:+.3f} ms"
    )
    assert abs(stopped - last_rtp) < WHOLE_SECONDS_SLACK, (last_rtp, end.at)
    # The bridge ended when Asterisk dropped the leg; the bill ends when the media stopped.
    assert bridge_end <= end.at
    assert abs(bridge_end - end.at) < timedelta(milliseconds=250)
