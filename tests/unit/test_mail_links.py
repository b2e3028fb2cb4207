"""Signed solicit links: what verifies, what is forged, what has expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from ivr_engine.errors import LinkError, LinkExpired, LinkForged
from ivr_engine.mail.links import (
    sign_solicit,
    solicit_url,
    verify_solicit,
)

SECRET = b"a-long-random-secret"
NOW = datetime(2024, 3, 12, 13, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def test_valid_token_verifies_until_its_expiry() -> None:
    token = sign_solicit(42, LATER, SECRET)
    verify_solicit(42, token, SECRET, NOW)
    verify_solicit(42, token, SECRET, LATER - timedelta(seconds=1))


def test_expiry_is_absolute_whatever_the_offset() -> None:
    rome = timezone(timedelta(hours=1))
    token = sign_solicit(42, LATER.astimezone(rome), SECRET)
    verify_solicit(42, token, SECRET, NOW)  # same instant, another offset


def test_expired_token() -> None:
    token = sign_solicit(42, LATER, SECRET)
    with pytest.raises(LinkExpired, match="request 42 expired"):
        verify_solicit(42, token, SECRET, LATER)
    with pytest.raises(LinkError):
        verify_solicit(42, token, SECRET, LATER + timedelta(days=3))


def test_token_signed_with_another_secret_is_forged() -> None:
    token = sign_solicit(42, LATER, b"someone-else")
    with pytest.raises(LinkForged, match="not valid for request 42"):
        verify_solicit(42, token, SECRET, NOW)


def test_token_of_another_request_is_forged() -> None:
    token = sign_solicit(41, LATER, SECRET)
    with pytest.raises(LinkForged):
        verify_solicit(42, token, SECRET, NOW)


def test_extending_the_expiry_breaks_the_signature() -> None:
    version, expiry, mac = sign_solicit(42, NOW, SECRET).split(".")
    stretched = f"{version}.{int(expiry) + 86400}.{mac}"
    with pytest.raises(LinkForged):
        verify_solicit(42, stretched, SECRET, NOW)


def test_flipping_one_character_of_the_mac_is_forged() -> None:
    token = sign_solicit(42, LATER, SECRET)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(LinkForged):
        verify_solicit(42, flipped, SECRET, NOW)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "....",
        "v1",
        "v1.123",
        "v2.1710248400.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.0123.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.+123.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.1710248400.short",
        "v1.1710248400.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "v1.１７１０２４８４００.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.1710248400.ÀAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "<script>",
    ],
)
def test_garbage_tokens_are_forged(garbage: str) -> None:
    with pytest.raises(LinkForged):
        verify_solicit(42, garbage, SECRET, NOW)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_solicit(42, datetime(2024, 3, 12, 14, 0), SECRET)
    token = sign_solicit(42, LATER, SECRET)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_solicit(42, token, SECRET, datetime(2024, 3, 12, 13, 0))


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret is empty"):
        sign_solicit(42, LATER, b"")


def test_url_carries_the_token_unchanged() -> None:
    token = sign_solicit(42, LATER, SECRET)
    url = solicit_url("https://experts.example.org/", 42, token)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://experts.example.org/solicit/42"
    )
    assert parse_qs(parts.query) == {"token": [token]}
    assert url.endswith(f"?token={token}")  # URL-safe: nothing had to be quoted
