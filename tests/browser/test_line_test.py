"""The line self-test card of the Availability page in a real browser: the button (a form
with the panel's CSRF token), the result following live, and IVR_LINE_TEST_REQUIRED_HOURS
refusing "Return available" until a recent test passed. Asterisk is away here, so a test
started from the button cannot place its call: it is recorded as failed, never passed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect

from ivr_engine.engine import Engine
from tests.browser.conftest import TOKEN, Site, shot
from tests.conftest import asterisk_away

pytestmark = pytest.mark.browser


@pytest.fixture
async def strict_site(dsn: str, browser: Browser) -> AsyncIterator[Site]:
    """An engine that wants a line test passed in the last 4 hours before going available."""
    settings = asterisk_away(dsn, TOKEN).model_copy(update={"line_test_required_hours": 4.0})
    engine = Engine(settings)
    await engine.start()
    s = Site(engine, browser, TOKEN)
    try:
        yield s
    finally:
        await s.close()
        await engine.close()


async def test_the_button_starts_a_test_and_the_result_shows(site: Site) -> None:
    expert_id = await site.expert("+390600000601", "anna@example.org")
    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + "/panel/availability")
    card = page.locator("#line-test-card")
    await expect(card).to_have_attribute("data-state", "none")
    await expect(page.locator("#line-test-needed")).to_have_count(0)  # not required here

    await page.locator("#line-test-start").click()

    await expect(page.locator("[role=status]")).to_contain_text("calling your registered number")
    # Asterisk is away: the call cannot be placed; the card follows without a reload.
    await expect(page.locator("#live-line-test")).to_have_attribute("data-live", "open")
    await expect(card).to_have_attribute("data-state", "failed")
    await expect(page.locator("#line-test-last")).to_contain_text("could not be placed")
    row = await site.pool.fetchrow("SELECT * FROM line_tests WHERE expert_id = $1", expert_id)
    assert (row["source"], row["result"]) == ("panel", "failed")

    # A test passed elsewhere (the phone menu) shows live too, with its time.
    await site.pool.execute(
        "INSERT INTO line_tests (expert_id, source, channel_id, result, ended_at)"
        " VALUES ($1, 'phone_menu', 'ivr-lt-browser', 'passed', now())",
        expert_id,
    )
    await expect(card).to_have_attribute("data-state", "passed")
    await expect(page.locator("#line-test-passed")).to_contain_text("Last passed")
    await shot(page, "panel-line-test")

    # The button is a form like the others: a POST without the CSRF token is refused.
    status = await page.evaluate("fetch('/panel/line-test', {method: 'POST'}).then(r => r.status)")
    assert status == 403
    assert (
        await site.pool.fetchval("SELECT count(*) FROM line_tests WHERE expert_id = $1", expert_id)
        == 2
    )


async def test_return_available_needs_a_recent_test(strict_site: Site) -> None:
    site = strict_site
    expert_id = await site.expert("+390600000602", "sofia@example.org", language="it")
    status, _ = await site.api("POST", f"/api/v1/experts/{expert_id}/pause", {"minutes": 20})
    assert status == 200
    page = await site.sign_in("sofia@example.org", lang="it")
    await page.goto(site.base + "/panel/availability")
    await expect(page.locator("#line-test-needed")).to_contain_text("ultime 4 ore")

    await page.locator("#resume").click()

    await expect(page.locator(".notice.error")).to_contain_text("prova della linea")
    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "paused")
    await shot(page, "panel-line-test-required-it")

    await site.pool.execute(
        "INSERT INTO line_tests (expert_id, source, channel_id, result, ended_at)"
        " VALUES ($1, 'phone_menu', 'ivr-lt-browser-it', 'passed', now())",
        expert_id,
    )
    await expect(page.locator("#line-test-needed")).to_have_count(0)
    await page.locator("#resume").click()
    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "open")
    status, body = await site.api("GET", f"/api/v1/experts/{expert_id}/availability")
    assert body["paused_until"] is None
