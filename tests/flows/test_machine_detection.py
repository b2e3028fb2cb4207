"""No voicemail is ever bridged: an expert without the accept-by-key prompt goes through
Asterisk's answering-machine detection (the dialplan's ivr-amd, played by the fake ARI)
before the client is called; only a person is bridged. With the prompt, nobody is screened:
a machine presses no key, which is already a missed call (test_acceptance.py)."""

from __future__ import annotations

import asyncio

import pytest

from ivr_engine.ari.models import parse_ari_time
from tests.fakes import answers, voicemail

from .conftest import CLIENT, EXPERT, StartFlows

pytestmark = pytest.mark.flows


async def test_a_person_is_screened_then_bridged(flows: StartFlows) -> None:
    h = await flows(amd_greeting_ms=1800, amd_max_words=4)
    h.fake.phone(EXPERT, answers(hang_up_in_bridge_after=0.1, amd_seconds=0.2))
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert(ivr=False))

    assert await h.settled(request_id, "completed") == "completed"

    (expert,) = h.fake.dialled(EXPERT)
    assert expert.continued == ["ivr-amd"]
    assert expert.variables == {"IVR_AMD": "2500,1800,800,5000,,,4"}
    # The client was rung only once the verdict was in.
    (client,) = h.fake.dialled(CLIENT)
    verdict = next(
        e for e in h.fake.events if e["type"] == "StasisStart" and e["args"][:1] == ["amd"]
    )
    assert verdict["args"] == ["amd", "HUMAN", "HUMAN-1000-800"]
    assert client.created_at >= parse_ari_time(verdict["timestamp"])
    assert h.fake.history_bridges[f"ivr-{request_id}-bridge"]
    e, k = await h.attempts(request_id)
    assert (e["outcome"], k["outcome"]) == ("completed", "completed")
    # Answered when the phone picked up, not when the detection ended.
    assert expert.answered_at is not None
    assert abs((e["answered_at"] - expert.answered_at).total_seconds()) < 0.1
    assert await h.consultation(request_id) is not None


async def test_a_voicemail_is_a_missed_call_never_bridged(flows: StartFlows) -> None:
    h = await flows(retry_delay=60)
    h.fake.phone(EXPERT, voicemail())
    h.fake.phone(CLIENT, answers())
    request_id = await h.request(await h.expert(ivr=False))

    assert await h.settled(request_id, "waiting") == "waiting"

    (expert,) = h.fake.dialled(EXPERT)
    assert expert.continued == ["ivr-amd"] and expert.hung_up_by == "engine"
    assert expert.played == [] and expert.moh_started == 0  # the machine recorded nothing
    assert h.fake.dialled(CLIENT) == [] and h.fake.history_bridges == {}
    (a,) = await h.attempts(request_id)
    assert (a["outcome"], a["answered_at"], a["hangup_cause"]) == ("no_answer", None, None)
    assert a["hangup_text"] == "not a person: AMD MACHINE LONGGREETING-1520-1500"
    assert (await h.events(request_id))[-1] == ("ringing_expert", "waiting", "no_answer")
    assert await h.consultation(request_id) is None
    assert await h.emails(request_id) == ["expert_missed_call"]  # the usual missed call


@pytest.mark.parametrize(
    ("status", "cause"),
    [("NOTSURE", "TOOLONG-5000"), ("UNAVAILABLE", "NO-APP-AMD"), ("", "")],
)
async def test_anything_but_a_person_is_not_bridged(
    flows: StartFlows, status: str, cause: str
) -> None:
    h = await flows(retry_delay=60)
    h.fake.phone(EXPERT, answers(amd=(status, cause)))
    request_id = await h.request(await h.expert(ivr=False))

    assert await h.settled(request_id, "waiting") == "waiting"

    assert h.fake.dialled(CLIENT) == [] and h.fake.history_bridges == {}
    (a,) = await h.attempts(request_id)
    assert a["outcome"] == "no_answer" and a["answered_at"] is None
    assert a["hangup_text"] == f"not a person: AMD {status or 'no verdict'} {cause}".strip()


async def test_hanging_up_during_the_detection_is_a_missed_call(flows: StartFlows) -> None:
    h = await flows(retry_delay=60)
    h.fake.phone(EXPERT, answers(hang_up_after=0.1, amd_seconds=None))
    request_id = await h.request(await h.expert(ivr=False))

    assert await h.settled(request_id, "waiting") == "waiting"

    (expert,) = h.fake.dialled(EXPERT)
    assert expert.continued == ["ivr-amd"] and expert.hung_up_by == "phone"
    assert h.fake.dialled(CLIENT) == []
    (a,) = await h.attempts(request_id)
    assert (a["outcome"], a["answered_at"]) == ("no_answer", None)
    assert a["hangup_text"] == "not a person: AMD HANGUP hung up during the detection"


async def test_asterisk_refusing_the_detection_is_not_a_bridge(flows: StartFlows) -> None:
    h = await flows(retry_delay=60)
    h.fake.phone(EXPERT, answers())
    h.fake.fail("POST", "/channels/*/continue", status=500)
    request_id = await h.request(await h.expert(ivr=False))

    assert await h.settled(request_id, "waiting") == "waiting"

    (expert,) = h.fake.dialled(EXPERT)
    assert expert.hung_up_by == "engine" and h.fake.dialled(CLIENT) == []
    (a,) = await h.attempts(request_id)
    assert a["outcome"] == "no_answer"
    assert a["hangup_text"].startswith("not a person: AMD no verdict detection failed: ARI POST")


async def test_with_the_prompt_nobody_is_screened(flows: StartFlows) -> None:
    h = await flows(digit_timeout=0.2, prompt_tries=1)
    h.fake.phone(EXPERT, voicemail())  # presses no key: the prompt itself screens it
    request_id = await h.request(await h.expert())

    assert await h.settled(request_id, "waiting") == "waiting"

    (expert,) = h.fake.dialled(EXPERT)
    assert expert.continued == [] and h.fake.requests("POST", "/channels/*/continue") == []
    assert h.fake.dialled(CLIENT) == [] and h.fake.history_bridges == {}
    (a,) = await h.attempts(request_id)
    assert (a["outcome"], a["choice"]) == ("no_choice", None)


async def test_a_verdict_lost_with_the_event_socket_is_read_from_asterisk(
    flows: StartFlows,
) -> None:
    # The bound on the wait is AMD's own analysis time plus a margin (5 s).
    h = await flows(amd_total_analysis_ms=500)
    h.fake.phone(EXPERT, answers(hang_up_in_bridge_after=0.1, amd_seconds=0.3))
    h.fake.phone(CLIENT, answers())

    def cut() -> None:  # as the channel leaves for the dialplan: its way back is not seen
        h.fake.refuse_websockets()
        asyncio.get_running_loop().create_task(h.fake.drop_websockets())

    h.fake.when("POST", "/channels/*/continue", cut)
    request_id = await h.request(await h.expert(ivr=False))
    await h.fake.wait_until(
        lambda: any(
            e["type"] == "StasisStart" and e["args"][:1] == ["amd"] for e in h.fake.lost_events
        ),
        what="the verdict's StasisStart, lost",
    )
    h.fake.refuse_websockets(False)

    assert await h.settled(request_id, "completed", timeout=15) == "completed"

    (expert,) = h.fake.dialled(EXPERT)
    assert h.fake.requests("GET", f"/channels/{expert.id}")  # where the verdict was read
    e, k = await h.attempts(request_id)
    assert (e["outcome"], k["outcome"]) == ("completed", "completed")
