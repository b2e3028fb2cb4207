import itertools
from datetime import UTC, datetime, timedelta

import pytest

from ivr_engine.domain.billing import billed_seconds
from ivr_engine.domain.requests import (
    FINAL_STATES,
    TRANSITIONS,
    RequestState,
    can_leave,
    check_transition,
)
from ivr_engine.domain.routing import dial_string
from ivr_engine.errors import ConfigError, InvalidTransition

S = RequestState


def test_happy_path_is_allowed() -> None:
    path = [S.WAITING, S.RINGING_EXPERT, S.RINGING_CLIENT, S.CONNECTED, S.COMPLETED]
    for current, target in itertools.pairwise(path):
        check_transition(current, target)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_never_move(final: RequestState) -> None:
    for target in S:
        with pytest.raises(InvalidTransition):
            check_transition(final, target)


def test_no_skipping_the_expert() -> None:
    with pytest.raises(InvalidTransition):
        check_transition(S.WAITING, S.CONNECTED)
    with pytest.raises(InvalidTransition):
        check_transition(S.RINGING_EXPERT, S.CONNECTED)
    with pytest.raises(InvalidTransition):
        check_transition(S.CONNECTED, S.WAITING)


def test_every_non_final_state_can_fail_or_finish() -> None:
    for state in S:
        if state.is_final:
            assert state not in TRANSITIONS
        else:
            assert TRANSITIONS[state] & FINAL_STATES


def test_client_may_leave_only_before_acceptance() -> None:
    assert can_leave(S.WAITING) and can_leave(S.RINGING_EXPERT)
    assert not can_leave(S.RINGING_CLIENT) and not can_leave(S.CONNECTED)
    assert not can_leave(S.LOST)


def test_billed_seconds_rounds_started_second_up() -> None:
    t0 = datetime(2026, 11, 23, 20, 0, 0, tzinfo=UTC)
    assert billed_seconds(t0, t0) == 0
    assert billed_seconds(t0, t0 + timedelta(seconds=5)) == 5
    assert billed_seconds(t0, t0 + timedelta(seconds=5, milliseconds=1)) == 6
    assert billed_seconds(t0, t0 - timedelta(seconds=1)) == 0


def test_dial_string_longest_prefix_wins() -> None:
    routes = {
        "*": "PJSIP/{number}@trunk",
        "+39": "PJSIP/{number}@italy",
        "+3906123": "PJSIP/operator1",
    }
    assert dial_string("+33123", routes) == "PJSIP/+33123@trunk"
    assert dial_string("+3902000", routes) == "PJSIP/+3902000@italy"
    assert dial_string("+39061234", routes) == "PJSIP/operator1"


@pytest.mark.parametrize("bad", ["", "12/3", "1&PJSIP/x", "1,2", "a b"])
def test_dial_string_refuses_injection(bad: str) -> None:
    with pytest.raises(ConfigError):
        dial_string(bad, {"*": "PJSIP/{number}@trunk"})
