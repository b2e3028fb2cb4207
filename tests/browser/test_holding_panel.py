"""Callers on the line in the panel: the expert's Calls page says who holds and who waits
for a call back, live; the admin overview lists callers holding across experts and the
calls-in figures of the last days."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from ivr_engine.store import holding
from tests.browser.conftest import Site, shot

pytestmark = pytest.mark.browser


async def _hold(site: Site, request_id: int, channel: str) -> None:
    """What a caller holding on the line looks like in PostgreSQL (flows/holding.py)."""
    await site.pool.execute(
        "UPDATE requests SET holding_channel = $2 WHERE id = $1", request_id, channel
    )


async def test_the_calls_page_follows_a_holding_caller_live(site: Site) -> None:
    expert_id = await site.expert("+390600000351", "anna@example.org")
    first = await site.request(expert_id, "+393330000351", alias="Marco")
    second = await site.request(expert_id, "+393330000352", alias="Luca")
    page = await site.sign_in("anna@example.org")
    row = page.locator(f"tr[data-request-id='{second}']")
    await expect(row).to_contain_text("To call back")
    await _hold(site, second, "chan-352")
    # No reload: the event stream brought the change.
    await expect(row.locator("td[data-holding]")).to_have_attribute("data-holding", "yes")
    await expect(row).to_contain_text("On the line")
    await expect(row.locator("td").first).to_have_text("2")
    await shot(page, "calls-holding")
    # The caller hangs up: a missed call, with the promise shown.
    assert await holding.stop_holding(site.pool, second, "chan-352", missed_minutes=15)
    await expect(row).to_contain_text("missed call: by")
    await expect(row.locator("td[data-holding]")).to_have_attribute("data-holding", "no")
    assert first  # still first in line


async def test_the_admin_overview_shows_callers_holding_and_calls_in(site: Site) -> None:
    admin = await site.admin()
    anna = await site.expert("+390600000361", "anna@example.org", alias="Anna")
    request_id = await site.request(anna, "+393330000361", alias="Marco")
    await holding.record_call(
        site.pool, "in-361", dialled="0200000001", caller="+393330000361", withheld=False
    )
    await holding.record_call(site.pool, "in-362", dialled="0200000001", caller="", withheld=True)
    await holding.end_call(site.pool, "in-362", "declined")
    page = await site.sign_in(admin)
    await expect(page.locator("#holding-empty")).to_be_visible()
    await _hold(site, request_id, "in-361")
    holder = page.locator(f"#holding-table tr[data-request-id='{request_id}']")
    await expect(holder).to_contain_text("Anna")  # live, across experts
    await expect(holder).to_contain_text("Marco")
    await expect(page.locator("#holding-count")).to_have_text("1")
    today = page.locator("#calls-in-table tbody tr").first
    await expect(today.locator("td")).to_have_text(
        [
            datetime.now(ZoneInfo("Europe/Rome")).date().isoformat(),
            "2",
            "0",
            "0",
            "—",
            "1",
            "—",
        ]
    )
    await expect(page.locator("#calls-in-table tbody tr")).to_have_count(7)
    await shot(page, "admin-holding")
