from datetime import UTC, datetime, timedelta

import pytest

from ivr_engine.domain.pin import (
    GUESSES_PER_DAY,
    PinThrottle,
    Strikes,
    check_pin_format,
    hash_pin,
    verify_pin,
)
from ivr_engine.errors import ConfigError


def test_hash_is_salted_and_verifies() -> None:
    a, b = hash_pin("482913"), hash_pin("482913")
    assert a != b and "482913" not in a
    assert a.startswith("scrypt$16384$8$1$")
    assert verify_pin("482913", a) and verify_pin("482913", b)
    assert not verify_pin("482914", a)
    assert not verify_pin("", a)


@pytest.mark.parametrize(
    "bad", ["", "123", "4321", "12345", "123456789", "12a456", "123 456", "١٢٣٤٥٦"]
)
def test_new_pins_have_6_to_8_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="6 to 8 digits"):
        check_pin_format(bad)


def test_corrupt_hash_is_an_error_not_a_wrong_pin() -> None:
    with pytest.raises(ConfigError):
        verify_pin("1234", "md5$abc")


T0 = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
THROTTLE = PinThrottle()  # the settings' defaults: 3 wrong PINs, 15 min, 24 h, 24 h


def test_each_lockout_is_longer_and_a_quiet_day_forgets() -> None:
    s, now, lengths = Strikes(), T0, []
    for _ in range(9):
        for _ in range(3):
            assert not THROTTLE.locked(s, now)
            s = THROTTLE.failed(s, now)
        assert s.locked_until is not None and THROTTLE.locked(s, now)
        lengths.append(s.locked_until - now)
        now = s.locked_until
    minutes = [int(d.total_seconds() // 60) for d in lengths]
    assert minutes == [15, 30, 60, 120, 240, 480, 960, 1440, 1440]
    # Two wrong PINs, then a quiet day: the next wrong PIN counts as the first one.
    s = THROTTLE.failed(THROTTLE.failed(Strikes(), T0), T0)
    later = T0 + timedelta(hours=24)
    assert THROTTLE.current(s, later) == Strikes()
    assert THROTTLE.failed(s, later).failures == 1
    assert THROTTLE.failed(s, later - timedelta(minutes=1)).locked_until is not None
    # A day counts from the end of a lockout, not from the wrong PIN that caused it.
    locked = THROTTLE.failed(THROTTLE.failed(s, T0), T0)
    assert locked.lockouts == 1 and locked.locked_until == T0 + timedelta(minutes=15)
    assert THROTTLE.current(locked, later) == locked
    assert THROTTLE.current(locked, later + timedelta(minutes=15)) == Strikes()


def _guesses_per_day(burst: int | None, days: int = 60) -> float:
    """A guesser who tries whenever the menu is open; after ``burst`` lockouts (None:
    never) it stops until the counts are forgotten, then starts again."""
    s, now, guesses, end = Strikes(), T0, 0, T0 + timedelta(days=days)
    while now < end:
        s = THROTTLE.current(s, now)
        if THROTTLE.locked(s, now):
            assert s.locked_until is not None
            if burst is not None and s.lockouts >= burst:
                now = s.locked_until + THROTTLE.quiet  # wait until forgotten
            else:
                now = s.locked_until
            continue
        s, guesses = THROTTLE.failed(s, now), guesses + 1
    return guesses / days


def test_the_guessing_rate_that_remains_is_documented() -> None:
    """About 12 PINs a day per expert at best, against 288 with a fixed 15-minute lockout:
    what the README's Security section says."""
    best = max(_guesses_per_day(burst) for burst in [None, *range(1, 12)])
    assert GUESSES_PER_DAY - 1 <= best <= GUESSES_PER_DAY
    assert _guesses_per_day(None) < 4  # never pausing: 3 a day once at the longest lockout
    fixed = PinThrottle(max_lockout=timedelta(minutes=15))  # the old rule
    s, now, tries = Strikes(), T0, 0
    while now < T0 + timedelta(days=1):
        if THROTTLE.locked(s, now):
            assert s.locked_until is not None
            now = s.locked_until
            continue
        s, tries = fixed.failed(s, now), tries + 1
    assert tries == 288
