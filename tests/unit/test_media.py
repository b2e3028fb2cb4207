"""Until when a leg carried media, from its hangup time and cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ivr_engine.domain.media import RTP_TIMEOUT_CAUSE, media_stopped_at

HANGUP = datetime(2026, 11, 20, 10, 0, 31, 500000, tzinfo=UTC)


def test_an_rtp_timeout_ends_the_media_a_timeout_earlier() -> None:
    assert RTP_TIMEOUT_CAUSE == 44  # AST_CAUSE_REQUESTED_CHAN_UNAVAIL
    assert media_stopped_at(HANGUP, 44, 30) == HANGUP - timedelta(seconds=30)


def test_any_other_hangup_ends_the_media_at_the_hangup() -> None:
    for cause in (None, 0, 16, 17, 1):
        assert media_stopped_at(HANGUP, cause, 30) == HANGUP
    assert media_stopped_at(HANGUP, 44, 0) == HANGUP  # no timeout configured
