"""The rules of callers on the line: rank, wait estimate, callback deadline; the settings of
service numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr_engine.config import settings_from_env
from ivr_engine.domain.holding import callback_deadline, estimated_wait_minutes, list_rank
from ivr_engine.errors import ConfigError

SECRETS = {
    "IVR_DATABASE_URL": "postgresql://x@127.0.0.1/x",
    "IVR_ARI_PASSWORD": "x",
    "IVR_AMI_SECRET": "x",
    "IVR_API_TOKEN": "x",
    "IVR_LINK_SECRET": "x",
}


def test_rank_puts_new_clients_first_only_under_new_first() -> None:
    assert list_rank("new_first", earlier_consultations=0) < list_rank(
        "new_first", earlier_consultations=3
    )
    assert list_rank("fifo", earlier_consultations=0) == list_rank("fifo", earlier_consultations=3)


@pytest.mark.parametrize(
    ("ahead", "busy", "recent", "expected"),
    [
        (0, False, [], 1),  # next, expert free: at least a minute is said
        (2, False, [], 20),  # the default 10 minutes per client ahead
        (1, True, [600, 1200], 23),  # 15 min average, plus half of one in progress: 22.5 → 23
        (0, True, [61], 1),
    ],
)
def test_wait_estimate(ahead: int, busy: bool, recent: list[int], expected: int) -> None:
    got = estimated_wait_minutes(ahead, expert_busy=busy, recent_seconds=recent, default_minutes=10)
    assert got == expected


def test_callback_deadline() -> None:
    at = datetime(2026, 3, 29, 1, 50, tzinfo=UTC)  # across the DST change in Rome: UTC math
    assert callback_deadline(at, 15) == at + timedelta(minutes=15)


def test_service_numbers_from_the_environment() -> None:
    s = settings_from_env(
        {
            **SECRETS,
            "IVR_SERVICE_NUMBERS": '{"0200000001": {"language": "it", "category": "tarot",'
            ' "policy": "new_first"}, "0200000002": {}}',
            "IVR_PRIORITY_POLICY": "fifo",
        }
    )
    assert s.service_numbers["0200000001"].language == "it"
    assert s.policy_of("0200000001") == "new_first"
    assert s.policy_of("0200000002") == "fifo"  # no policy of its own
    assert s.policy_of(None) == "fifo"  # the API


@pytest.mark.parametrize(
    "numbers",
    [
        '{"0694801744": {}}',  # the planning number
        '{"02-000": {}}',  # not digits
        '{"0200": {"language": "fr"}}',  # no prompts in French
        '{"0200": {"policy": "vip_first"}}',
        '{"0200": {"lang": "it"}}',  # a typo is not ignored
    ],
)
def test_bad_service_numbers_are_refused(numbers: str) -> None:
    with pytest.raises(ConfigError):
        settings_from_env({**SECRETS, "IVR_SERVICE_NUMBERS": numbers})
