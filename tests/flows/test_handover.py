"""An expert is rung for the next request only once the previous call's legs are hung up.

The request's final state is what lets the dispatcher claim the expert again, so it is
written after the expert heard the goodbye and Asterisk reported the channel destroyed;
written before, the expert's phone rings while they are still on the line (busy: a missed
call, an email and minutes marked unreachable). The fake Asterisk's channels show it: the
second call to the expert is created after the first one was destroyed.
"""

from __future__ import annotations

import pytest

from tests.fakes import answers, never_answers

from .conftest import CLIENT, EXPERT, OTHER_CLIENT, StartFlows

pytestmark = pytest.mark.flows


@pytest.mark.parametrize(
    ("key", "client_answers", "final", "goodbye"),
    [
        ("3", True, "refused", "refused_goodbye"),
        ("1", False, "client_unreachable", "client_unreachable_expert"),
    ],
)
async def test_the_next_request_rings_the_expert_after_the_last_call_hung_up(
    flows: StartFlows, key: str, client_answers: bool, final: str, goodbye: str
) -> None:
    h = await flows()
    h.fake.playback_seconds = 0.3  # a goodbye long enough to be noticed
    h.fake.phone(EXPERT, answers(press=key))
    for number in (CLIENT, OTHER_CLIENT):
        h.fake.phone(number, answers() if client_answers else never_answers())
    expert_id = await h.expert()
    first = await h.request(expert_id, CLIENT, alias="Marco")
    second = await h.request(expert_id, OTHER_CLIENT, alias="Luca")

    assert await h.settled(first, final) == final
    assert await h.settled(second, final, timeout=10) == final

    earlier, later = h.fake.dialled(EXPERT)
    assert h.heard(earlier, goodbye) and earlier.hung_up_by == "engine"
    assert earlier.destroyed_at is not None
    assert later.created_at >= earlier.destroyed_at, (earlier.destroyed_at, later.created_at)
    # Both calls were real offers, taken as such: nobody was busy, nothing was missed.
    offers = [await h.attempts(r) for r in (first, second)]
    assert [a[0]["outcome"] for a in offers] == [final] * 2
    # No email to the expert (a client who could not be reached is told, by email).
    told = ["client_request_closed"] if final == "client_unreachable" else []
    assert await h.emails(first) == await h.emails(second) == told
    assert (await h.expert_row(expert_id))["unreachable_until"] is None
    # The final state was written after the channel was gone.
    moved = await h.pool.fetchval(
        "SELECT at FROM request_events WHERE request_id = $1 AND to_state = $2", first, final
    )
    assert moved >= earlier.destroyed_at
