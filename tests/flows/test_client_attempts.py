"""Contact attempts: after the expert accepted, the client is called up to
IVR_CLIENT_ATTEMPTS times, IVR_CLIENT_RETRY_DELAY apart, while the expert holds; then the
request closes as client_unreachable and the client is emailed."""

from __future__ import annotations

import pytest

from tests.fakes import answers, busy

from .conftest import CLIENT, EXPERT, StartFlows

pytestmark = pytest.mark.flows


async def test_the_client_answers_the_third_call(flows: StartFlows) -> None:
    h = await flows(client_attempts=3, client_retry_delay=0.3)
    h.fake.phone(EXPERT, answers(press="1", hang_up_in_bridge_after=0.2))
    h.fake.phone(CLIENT, busy())
    request_id = await h.request(await h.expert())
    await h.fake.wait_until(lambda: len(h.fake.dialled(CLIENT)) == 2, what="a second call")
    h.fake.phone(CLIENT, answers())

    assert await h.settled(request_id, "completed") == "completed"

    calls = h.fake.dialled(CLIENT)
    assert len(calls) == 3
    assert (calls[1].created_at - calls[0].destroyed_at).total_seconds() >= 0.3  # type: ignore[operator]
    (expert,) = h.fake.dialled(EXPERT)
    assert expert.moh_started == 1 and not h.heard(expert, "client_unreachable_expert")
    outcomes = [a["outcome"] for a in await h.attempts(request_id) if a["leg"] == "client"]
    assert outcomes == ["busy", "busy", "completed"]
    assert await h.emails(request_id) == ["consultation_earnings"]


async def test_after_the_last_call_the_request_closes_and_the_client_is_emailed(
    flows: StartFlows,
) -> None:
    h = await flows(client_attempts=3, client_retry_delay=0.05)
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, busy())
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "client_unreachable") == "client_unreachable"

    assert len(h.fake.dialled(CLIENT)) == 3
    (expert,) = h.fake.dialled(EXPERT)
    assert h.heard(expert, "client_unreachable_expert") and expert.hung_up_by == "engine"
    row = await h.row(request_id)
    assert row["end_reason"] != ""
    mail = await h.pool.fetchrow(
        "SELECT kind, to_address, payload->>'reason' AS reason FROM outbox_emails"
        " WHERE request_id = $1",
        request_id,
    )
    assert (mail["kind"], mail["to_address"], mail["reason"]) == (
        "client_request_closed",
        "marco@example.org",
        "client_unreachable",
    )


async def test_the_expert_hanging_up_between_two_calls_ends_the_request(flows: StartFlows) -> None:
    h = await flows(client_attempts=3, client_retry_delay=5)
    h.fake.phone(EXPERT, answers(press="1"))
    h.fake.phone(CLIENT, busy())
    request_id = await h.request(await h.expert())
    await h.fake.wait_until(
        lambda: len(h.fake.dialled(CLIENT)) == 1 and not h.fake.dialled(CLIENT)[0].alive,
        what="the first call failed",
    )
    (expert,) = h.fake.dialled(EXPERT)
    h.fake.hang_up(expert.id)

    assert await h.settled(request_id, "lost") == "lost"

    assert len(h.fake.dialled(CLIENT)) == 1  # not called again
    assert (await h.row(request_id))["end_reason"] == "expert_hung_up"
    e = next(a for a in await h.attempts(request_id) if a["leg"] == "expert")
    assert e["outcome"] == "hung_up_before_bridge"
    assert await h.emails(request_id) == []
