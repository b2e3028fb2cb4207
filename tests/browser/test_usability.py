"""Usable with a keyboard alone, and readable on a phone screen."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PASSWORD, Site, shot

pytestmark = pytest.mark.browser

EXPERT_PAGES = ["/panel", "/panel/availability", "/panel/profile", "/panel/consultations"]
ADMIN_PAGES = ["/admin", "/admin/experts", "/admin/experts/new"]


async def _tab_to(page: Page, label: str, limit: int = 40) -> None:
    """Press Tab until the focused element is named ``label`` (its text or aria-label)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        name = await page.evaluate(
            "() => { const e = document.activeElement;"
            " return e ? (e.getAttribute('aria-label') || e.textContent || '').trim() : '' }"
        )
        if name == label:
            return
    raise AssertionError(f"{label!r} cannot be reached with the Tab key")


async def test_sign_in_and_call_now_with_the_keyboard_only(site: Site) -> None:
    expert_id = await site.expert("+390600000601", "anna@example.org")
    request_id = await site.request(expert_id, "+393330000601", alias="Marco")
    page = await site.page()
    await page.goto(site.base + "/login")
    await expect(page.locator("#f-email")).to_be_focused()  # autofocus: type at once
    await page.keyboard.type("anna@example.org")
    await page.keyboard.press("Tab")
    await expect(page.locator("#f-password")).to_be_focused()
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(site.base + "/panel")

    await _tab_to(page, "Call now for Marco")
    await page.keyboard.press("Enter")
    await expect(page.locator("p.notice")).to_have_text("Your phone will ring in a moment.")
    assert (
        await site.pool.fetchval(
            "SELECT detail FROM request_events WHERE request_id = $1 ORDER BY id DESC LIMIT 1",
            request_id,
        )
        == "solicited"
    )


async def _fits(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


async def test_pages_fit_a_phone_screen(site: Site) -> None:
    expert_id = await site.expert("+390600000602", "anna@example.org")
    await site.request(expert_id, "+393330000602", alias="Marco")
    await site.admin()
    for email, paths in (("anna@example.org", EXPERT_PAGES), ("staff@example.org", ADMIN_PAGES)):
        page = await site.sign_in(email)
        await page.set_viewport_size({"width": 360, "height": 740})
        for path in paths:
            await page.goto(site.base + path)
            assert await _fits(page), f"{path} scrolls sideways on a 360 px wide screen"
        if email.startswith("anna"):
            await page.goto(site.base + "/panel")
            await shot(page, "calls-phone")
