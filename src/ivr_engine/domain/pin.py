"""Experts' PINs for the phone menu (and panel passwords): stored only as slow salted
hashes (scrypt).

Encoded as ``scrypt$N$r$p$<salt b64>$<hash b64>`` so the cost can be raised later without
invalidating the PINs already stored: each hash carries its own parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from ivr_engine.errors import ConfigError

# ~50 ms here: slow enough to make guessing a 4-digit PIN offline costly, fast enough for a call.
N, R, P = 2**14, 8, 1
PIN_FORMAT = re.compile(r"[0-9]{4,8}")


def check_pin_format(pin: str) -> None:
    if not PIN_FORMAT.fullmatch(pin):
        raise ValueError("a PIN is 4 to 8 digits (the phone keypad has no letters)")


def hash_pin(pin: str) -> str:
    check_pin_format(pin)
    return hash_secret(pin)


def verify_pin(pin: str, encoded: str) -> bool:
    return verify_secret(pin, encoded)


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return "$".join(["scrypt", str(N), str(R), str(P), _b64(salt), _b64(digest)])


def verify_secret(secret: str, encoded: str) -> bool:
    """True if ``secret`` matches; never raises on a wrong one, only on a corrupt stored hash."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(
            secret.encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError) as err:
        raise ConfigError("a stored PIN or password hash is corrupt") from err
    return hmac.compare_digest(actual, expected)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()
