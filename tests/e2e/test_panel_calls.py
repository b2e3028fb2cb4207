"""The Calls page of an engine on the sandbox Asterisk: "call now" rings the expert for
real, and the page follows the call live (no reload)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Browser, expect

from ivr_devkit.simphones import PhoneBook, answer, busy
from tests.browser.conftest import Site, shot

# the session fixture, shared with the browser tests
from tests.browser.conftest import browser as browser
from tests.e2e.conftest import API_TOKEN, Harness

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

EXPERT = "+390600000501"
CLIENT = "+393330000502"


async def _bridge_id(h: Harness, request_id: int, timeout: float = 30) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await h.pool.fetchval(
            "SELECT bridge_id FROM consultations WHERE request_id = $1", request_id
        )
        if found:
            return str(found)
        await asyncio.sleep(0.1)
    raise AssertionError(f"request {request_id} was never bridged")


async def test_call_now_rings_the_expert_and_the_page_follows_the_call(
    harness: Callable[..., Awaitable[Harness]], phones: PhoneBook, browser: Browser
) -> None:
    first = await phones.phone(EXPERT, busy())
    await phones.phone(CLIENT, answer(hangup_after_ms=9000))
    h = await harness(retry_delay=3600)  # only "call now" can bring the call back
    site = Site(h.engine, browser, API_TOKEN)
    try:
        expert_id = await site.expert(EXPERT, "anna@example.org")
        request_id = await site.request(expert_id, CLIENT, alias="Marco")
        assert "486" in (await first.finished(20)).sent
        await h.wait_state(request_id, "waiting")

        page = await site.sign_in("anna@example.org")
        row = page.locator(f"tr[data-request-id='{request_id}']")
        await expect(row).to_contain_text("Marco")
        # one missed call so far (the column is found by its label: the table's columns change)
        await expect(row.locator("td[data-label='Calls to you']")).to_have_text("1")

        await phones.replace(EXPERT, answer("1", dtmf_delay_ms=1000))
        await row.get_by_role("button", name="Call now for Marco").click()
        await expect(page.locator("p.notice")).to_have_text("Your phone will ring in a moment.")

        # What Asterisk says: one bridge holding the expert's new call and the client's.
        bridge_id = await _bridge_id(h, request_id)
        bridge = await h.ari(f"/bridges/{bridge_id}")
        attempts = await h.attempts(request_id)
        expert_leg = [a for a in attempts if a["leg"] == "expert"][-1]
        client_leg = [a for a in attempts if a["leg"] == "client"][-1]
        assert len(attempts) == 3  # the busy call, the call now, the client
        assert sorted(bridge["channels"]) == sorted(
            [expert_leg["channel_id"], client_leg["channel_id"]]
        )
        channel = await h.ari(f"/channels/{expert_leg['channel_id']}")
        assert channel["state"] == "Up"

        # ... and the page, without a reload, shows who the expert is talking to
        await expect(page.locator("#current-client")).to_have_text("Marco", timeout=15_000)
        await expect(page.locator("#waiting-empty")).to_be_visible()
        await shot(page, "calls-talking")

        assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
        await expect(page.locator("#current-call")).to_contain_text("You are not on a call")
    finally:
        await site.close()
