"""The Calls page in a real browser: sign in, the waiting list updates live."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site, shot

pytestmark = pytest.mark.browser


async def test_sign_in_and_waiting_list_updates_live(site: Site) -> None:
    expert_id = await site.expert("+390600000301", "anna@example.org")
    page = await site.sign_in("anna@example.org")
    assert page.url.endswith("/panel")
    await expect(page.locator("#waiting-empty")).to_be_visible()
    await expect(page.locator("#live-calls")).to_have_attribute("data-live", "open")

    request_id = await site.request(expert_id, "+393330000311", alias="Marco")

    row = page.locator(f"tr[data-request-id='{request_id}']")
    await expect(row).to_contain_text("Marco")  # no reload: the event stream brought it
    await expect(page.locator("#waiting-count")).to_have_text("1")
    await shot(page, "calls")


async def test_refuse_all_asks_first_then_refuses_everyone_waiting(site: Site) -> None:
    expert_id = await site.expert("+390600000321", "anna@example.org")
    first = await site.request(expert_id, "+393330000321", alias="Marco", client_email="m@x.org")
    second = await site.request(expert_id, "+393330000322", alias="Luca", client_email="l@x.org")
    page = await site.sign_in("anna@example.org")
    await page.get_by_role("link", name="Refuse all waiting clients…").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Refuse all waiting clients?")
    await expect(page.locator("main")).to_contain_text("2 clients are waiting")
    # going back refuses nobody
    await page.get_by_role("link", name="No, go back").click()
    await expect(page.locator("#waiting-count")).to_have_text("2")
    await page.get_by_role("link", name="Refuse all waiting clients…").click()
    await page.get_by_role("button", name="Yes, refuse them all").click()
    await expect(page.locator("p.notice")).to_contain_text("Waiting clients refused: 2")
    await expect(page.locator("#waiting-empty")).to_be_visible()
    rows = await site.pool.fetch(
        "SELECT state FROM requests WHERE id = ANY($1::bigint[])", [first, second]
    )
    assert [r["state"] for r in rows] == ["refused", "refused"]
    assert (
        await site.pool.fetchval(
            "SELECT count(*) FROM outbox_emails WHERE kind = 'client_request_refused'"
        )
        == 2
    )
