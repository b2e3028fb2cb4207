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
