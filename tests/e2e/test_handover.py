"""The expert's phone is rung for the next request only after the last call's BYE.

Two clients wait for one expert, who refuses both. The request's final state, which frees
the expert for the next one, is written after the goodbye and the hang-up: so at the
expert's SIP phone the second INVITE arrives after the first call's BYE, never during it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest

from ivr_devkit.simphones import PhoneBook, answer

from .conftest import Harness, until

pytestmark = pytest.mark.e2e

EXPERT = "+390600000121"
CLIENTS = ("+393330000222", "+393330000223")

StartHarness = Callable[..., Awaitable[Harness]]


async def test_the_next_invite_comes_after_the_last_bye(
    harness: StartHarness, phones: PhoneBook
) -> None:
    expert = await phones.phone(EXPERT, answer("3", dtmf_delay_ms=1000), calls=2)
    for number in CLIENTS:
        await phones.phone(number, answer())
    h = await harness()
    expert_id = await h.expert(EXPERT)
    requests = [await h.request(expert_id, number) for number in CLIENTS]
    for request_id in requests:
        assert await h.wait_state(request_id, "refused", timeout=60) == "refused"

    result = await expert.finished(30)
    assert result.ok, result
    seen = [m for m in result.messages if m.direction == "received"]
    invites = [m for m in seen if m.kind == "INVITE"]
    byes = [m for m in seen if m.kind == "BYE"]
    assert (len(invites), len(byes)) == (2, 2), result
    first_bye = next(m for m in byes if m.call_id == invites[0].call_id)
    assert first_bye.at is not None and invites[1].at is not None
    assert invites[1].at > first_bye.at, result
    assert [m.call_id for m in byes] == [m.call_id for m in invites]
    # Both offers were real: answered, refused, nobody marked busy or unreachable.
    for request_id in requests:
        # The client's call (to tell them) is recorded just after the refused state.
        (offer, _told) = await until(partial(h.attempts, request_id), lambda rows: len(rows) >= 2)
        assert (offer["outcome"], offer["choice"]) == ("refused", "3")
    missed = "SELECT count(*) FROM outbox_emails WHERE kind LIKE 'expert_missed%'"
    assert await h.pool.fetchval(missed) == 0
