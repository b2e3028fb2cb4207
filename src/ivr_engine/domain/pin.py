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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ivr_engine.errors import ConfigError

# ~50 ms here: slow enough to make guessing a PIN offline costly, fast enough for a call.
N, R, P = 2**14, 8, 1
# A new PIN: 6 to 8 digits (a million PINs at least; see PinThrottle for the guessing rate).
PIN_FORMAT = re.compile(r"[0-9]{6,8}")
MIN_DIGITS = 6
# What the phone menu accepts as typed: PINs set before the 6-digit rule keep working.
TYPED_PIN = re.compile(r"[0-9]{4,8}")


def check_pin_format(pin: str) -> None:
    if not PIN_FORMAT.fullmatch(pin):
        raise ValueError("a PIN is 6 to 8 digits (the phone keypad has no letters)")


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


# -- guessing at the phone menu ---------------------------------------------------------------
GUESSES_PER_DAY = 12  # the most PinThrottle's defaults let a guesser try, per expert


@dataclass(frozen=True)
class Strikes:
    """Wrong PINs counted for one key (an expert, a calling number)."""

    failures: int = 0  # wrong PINs since the last lockout
    lockouts: int = 0  # lockouts since the last quiet period
    locked_until: datetime | None = None
    last_failure: datetime | None = None


@dataclass(frozen=True)
class PinThrottle:
    """How wrong PINs lock the phone menu.

    ``max_failures`` wrong PINs in a row lock it for ``first_lockout``; each further lockout
    doubles, up to ``max_lockout``. After ``quiet`` without a wrong PIN and without a lockout
    the count starts again from nothing, so an expert who mistyped last week is not punished
    today. With the defaults (3, 15 min, 24 h, 24 h) a guesser gets at most GUESSES_PER_DAY
    tries a day per expert, whatever the calling numbers (``test_pin.py`` plays the best
    strategies): a 6-digit PIN then takes on average over a century to find, a 4-digit one
    about a year.
    """

    max_failures: int = 3
    first_lockout: timedelta = timedelta(minutes=15)
    max_lockout: timedelta = timedelta(hours=24)
    quiet: timedelta = timedelta(hours=24)

    def locked(self, s: Strikes, now: datetime) -> bool:
        return s.locked_until is not None and s.locked_until > now

    def current(self, s: Strikes, now: datetime) -> Strikes:
        """The strikes that still count at ``now``: all of them, or none once ``quiet`` has
        passed since the last wrong PIN and the end of the last lockout."""
        marks = [t for t in (s.last_failure, s.locked_until) if t is not None]
        if not marks or now - max(marks) < self.quiet:
            return s
        return Strikes()

    def failed(self, s: Strikes, now: datetime) -> Strikes:
        """The strikes after one more wrong PIN at ``now``: maybe a (longer) lockout."""
        s = self.current(s, now)
        if s.failures + 1 < self.max_failures:
            return replace(s, failures=s.failures + 1, last_failure=now)
        length = min(self.first_lockout * 2 ** min(s.lockouts, 20), self.max_lockout)
        return Strikes(0, s.lockouts + 1, now + length, now)
