"""Expiry through the dispatcher: a request nobody could take within IVR_REQUEST_TTL_HOURS
is ended and the client emailed, on the dispatcher's own timer (no other wake-up)."""

from __future__ import annotations

import pytest

from .conftest import StartFlows

pytestmark = pytest.mark.flows


async def test_a_waiting_request_expires_on_time(flows: StartFlows) -> None:
    h = await flows(request_ttl_hours=1 / 3600)  # one second
    expert_id = await h.expert()
    await h.pool.execute(
        "UPDATE experts SET paused_until = now() + interval '1 hour' WHERE id = $1", expert_id
    )
    request_id = await h.request(expert_id)

    assert await h.settled(request_id, "lost", attempts=0, timeout=5) == "lost"

    row = await h.row(request_id)
    assert row["end_reason"] == "expired"
    assert (row["ended_at"] - row["created_at"]).total_seconds() < 3
    assert await h.emails(request_id) == ["client_request_closed"]
    assert h.fake.requests("POST", "/channels") == []  # nothing was dialled
