"""Signed, expiring links sent in emails (the "call me now" link of a missed call).

A token is ``v1.<expiry>.<mac>``: the expiry in Unix seconds and an HMAC-SHA256, in URL-safe
base64 without padding, over ``solicit:v1:<request id>:<expiry>``. The request id is not in
the token but in the signed message, so a token copied onto another request's URL is forged.
The version is signed too: a later format can be introduced without accepting old tokens
under new rules.

Every character of a token is unreserved in a URL, so it needs no quoting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime
from urllib.parse import quote

from ivr_engine.errors import LinkExpired, LinkForged

VERSION = "v1"
# Canonical decimal only: "0123" or "+123" would name the same expiry with another text.
_EXPIRY = re.compile(r"[1-9][0-9]{0,11}", re.ASCII)
_MAC = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)  # 32 bytes of SHA-256, base64 unpadded


def sign_solicit(request_id: int, expires_at: datetime, secret: bytes) -> str:
    """A token that lets whoever holds it trigger the call of ``request_id`` until then."""
    expiry = int(_aware(expires_at, "expires_at").timestamp())
    return f"{VERSION}.{expiry}.{_mac(request_id, expiry, secret)}"


def verify_solicit(request_id: int, token: str, secret: bytes, now: datetime) -> None:
    """Return if ``token`` is valid for ``request_id`` at ``now``; raise a ``LinkError``.

    The signature is checked before the expiry, so "expired" is only ever said of a token we
    issued: a forger learns nothing from the answer.
    """
    _aware(now, "now")
    parts = token.split(".")
    if len(parts) != 3:
        raise LinkForged("link token is malformed")
    version, expiry_text, mac = parts
    if version != VERSION:
        raise LinkForged(f"link token has an unknown version {version[:8]!r}")
    if not _EXPIRY.fullmatch(expiry_text) or not _MAC.fullmatch(mac):
        raise LinkForged("link token is malformed")
    expiry = int(expiry_text)
    expected = _mac(request_id, expiry, secret)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        raise LinkForged(f"link token is not valid for request {request_id}")
    if now.timestamp() >= expiry:
        expired_at = datetime.fromtimestamp(expiry, now.tzinfo).isoformat()
        raise LinkExpired(f"link for request {request_id} expired at {expired_at}")


def solicit_url(public_url: str, request_id: int, token: str) -> str:
    """The address the expert opens: ``{public_url}/solicit/{request_id}?token=...``."""
    return f"{public_url.rstrip('/')}/solicit/{int(request_id)}?token={quote(token, safe='')}"


def _mac(request_id: int, expiry: int, secret: bytes) -> str:
    if not secret:
        # An empty key would make every token trivially forgeable: refuse to sign or check.
        raise ValueError("the link secret is empty")
    message = f"solicit:{VERSION}:{int(request_id)}:{expiry}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _aware(value: datetime, name: str) -> datetime:
    # A naive datetime is read as local time by timestamp(): a link's life would depend on
    # the host's time zone. That is a caller bug, not a bad link, hence ValueError.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value
