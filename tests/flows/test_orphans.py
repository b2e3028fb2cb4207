"""Channels the engine does not own: an originate whose reply never came is hung up, and a
channel entering the application is a call in only if the dialplan says "inbound"."""

from __future__ import annotations

import pytest

from ivr_engine.ari.models import StasisStart
from tests.fakes import answers

from .conftest import APP, EXPERT, StartFlows

pytestmark = pytest.mark.flows


async def test_an_originate_that_timed_out_is_hung_up_not_left_ringing(
    flows: StartFlows,
) -> None:
    h = await flows()
    h.ari._timeout = 0.3  # ARI's reply to the originate comes after the engine gave up
    h.fake.slow("POST", "/channels", 1.0)
    h.fake.phone(EXPERT, answers(after=0.6, press="1"))
    request_id = await h.request(await h.expert(), due_in=0)

    assert await h.settled(request_id, "waiting") == "waiting"
    (channel,) = h.fake.dialled(EXPERT)
    await h.fake.wait_until(lambda: not channel.alive, what="the orphan hung up")
    assert channel.hung_up_by == "engine" and channel.media == []  # nobody spoke to it
    (attempt,) = await h.attempts(request_id)
    assert attempt["outcome"] == "failed"  # the engine's gap: a failed originate
    assert attempt["hangup_text"].startswith("originate refused")


async def test_a_channel_is_a_call_in_only_if_the_dialplan_says_inbound(
    flows: StartFlows,
) -> None:
    h = await flows()
    taken: list[StasisStart] = []
    h.calls.on_inbound(taken.append)
    late = h.fake.add_channel("ivr-77-1", EXPERT, app=APP)  # answered after its originate
    caller = h.fake.add_channel("pjsip-in-1", "+393330000201", app=APP)
    caller.args = ["inbound", "0694801744"]
    for channel in (late, caller):
        h.fake.emit(APP, "StasisStart", channel=channel.snapshot(), args=channel.args)

    await h.fake.wait_until(lambda: not late.alive, what="the stray outbound channel gone")
    await h.until(lambda: len(taken) == 1, "the call in routed")
    assert late.hung_up_by == "engine" and late.media == []
    assert taken[0].channel.id == "pjsip-in-1" and caller.alive
    caller.hang_up()
