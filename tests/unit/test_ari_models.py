from datetime import UTC

import pytest

from ivr_engine.ari.client import Backoff
from ivr_engine.ari.models import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    Event,
    EventFormatError,
    PlaybackFinished,
    StasisStart,
    parse_event,
)

CHANNEL = {"id": "ivr-1-2", "name": "PJSIP/phone-network-00000001", "state": "Up"}


def test_stasis_start_parses_with_asterisk_timestamp() -> None:
    ev = parse_event(
        {
            "type": "StasisStart",
            "application": "ivr-engine",
            "timestamp": "2026-11-23T20:01:02.123+0000",
            "args": ["outbound"],
            "channel": CHANNEL,
        }
    )
    assert isinstance(ev, StasisStart)
    assert ev.channel_id == "ivr-1-2"
    assert ev.args == ["outbound"]
    assert ev.timestamp.tzinfo is not None
    assert ev.timestamp.astimezone(UTC).second == 2


def test_dtmf_destroyed_playback() -> None:
    ts = "2026-11-23T20:01:02.123+0100"
    dtmf = parse_event(
        {"type": "ChannelDtmfReceived", "timestamp": ts, "digit": "1", "channel": CHANNEL}
    )
    assert isinstance(dtmf, ChannelDtmfReceived) and dtmf.digit == "1"
    gone = parse_event(
        {
            "type": "ChannelDestroyed",
            "timestamp": ts,
            "cause": 17,
            "cause_txt": "User busy",
            "channel": CHANNEL,
        }
    )
    assert isinstance(gone, ChannelDestroyed) and gone.cause == 17
    pb = parse_event(
        {
            "type": "PlaybackFinished",
            "timestamp": ts,
            "playback": {"id": "p1", "target_uri": "channel:ivr-1-2", "state": "done"},
        }
    )
    assert isinstance(pb, PlaybackFinished) and pb.channel_id == "ivr-1-2"


def test_unknown_event_type_is_kept_generic() -> None:
    ev = parse_event({"type": "SomethingNew", "timestamp": "2026-11-23T20:01:02.123+0000"})
    assert type(ev) is Event and ev.channel_id is None


def test_malformed_event_is_rejected() -> None:
    with pytest.raises(EventFormatError, match="channel"):
        parse_event({"type": "ChannelDtmfReceived", "timestamp": "2026-11-23T20:01:02+0000"})
    with pytest.raises(EventFormatError, match="digit"):
        parse_event(
            {
                "type": "ChannelDtmfReceived",
                "timestamp": "2026-11-23T20:01:02+0000",
                "channel": CHANNEL,
            }
        )
    with pytest.raises(EventFormatError, match="timestamp"):
        parse_event({"type": "StasisStart", "channel": CHANNEL})
    with pytest.raises(EventFormatError, match="timestamp"):
        parse_event({"type": "StasisStart", "timestamp": "yesterday", "channel": CHANNEL})
    with pytest.raises(EventFormatError, match="args"):
        parse_event(
            {
                "type": "StasisStart",
                "timestamp": "2026-11-23T20:01:02+0000",
                "channel": CHANNEL,
                "args": "x",
            }
        )
    with pytest.raises(ValueError):  # still a ValueError, as callers catch
        parse_event(["not", "an", "event"])


def test_backoff_is_capped_and_resets() -> None:
    b = Backoff(first=0.5, cap=4)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    b.reset()
    assert b.next_delay() == 0.5
