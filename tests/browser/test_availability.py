"""The Availability page in a real browser: pause, channels, today's slots and the weekly
planning, each checked against what the JSON API then reports."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Site, shot

pytestmark = pytest.mark.browser

WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


async def _open(site: Site, phone: str, email: str, lang: str = "en") -> tuple[int, Page]:
    expert_id = await site.expert(phone, email, language=lang)
    page = await site.sign_in(email, lang=lang)
    await page.goto(site.base + "/panel/availability")
    return expert_id, page


async def _availability(site: Site, expert_id: int) -> dict[str, object]:
    status, body = await site.api("GET", f"/api/v1/experts/{expert_id}/availability")
    assert status == 200, body
    return dict(body)


async def test_pause_then_return_available(site: Site) -> None:
    expert_id, page = await _open(site, "+390600000501", "anna@example.org")
    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "open")

    await page.locator("#pause").click()

    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "paused")
    body = await _availability(site, expert_id)
    assert body["reason"] == "paused"
    until = datetime.fromisoformat(str(body["paused_until"])).astimezone(ZoneInfo("Europe/Rome"))
    await expect(page.locator("#paused-until")).to_contain_text(f"{until:%H:%M}")
    await shot(page, "availability-paused")

    await page.locator("#resume").click()

    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "open")
    await expect(page.locator("#pause")).to_be_visible()
    body = await _availability(site, expert_id)
    assert body["reason"] == "open"
    assert body["paused_until"] is None

    # A pause taken elsewhere (the phone menu, the API) shows without a reload.
    await expect(page.locator("#live-availability")).to_have_attribute("data-live", "open")
    status, _ = await site.api("POST", f"/api/v1/experts/{expert_id}/pause", {"minutes": 5})
    assert status == 200
    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "paused")
    await expect(page.locator("#resume")).to_be_visible()


async def test_weekly_planning_is_saved(site: Site) -> None:
    expert_id, page = await _open(site, "+390600000502", "anna@example.org")
    await expect(page.locator("#no-planning")).to_be_visible()

    await page.locator("#f-monday").fill("15:00-19:00, 09:00-12:00")
    await page.locator("#f-friday").fill("22:00-02:00")
    await page.locator("#f-timezone").fill("Europe/London")
    await page.locator("#planning-submit").click()

    await expect(page.locator("[role=status]")).to_contain_text("Weekly planning saved")
    await expect(page.locator("#f-monday")).to_have_value("09:00-12:00, 15:00-19:00")
    await expect(page.locator("#no-planning")).to_have_count(0)
    status, body = await site.api("GET", f"/api/v1/experts/{expert_id}/planning")
    assert status == 200
    assert body["has_planning"] is True
    assert body["timezone"] == "Europe/London"
    assert body["weekly"] == {"monday": ["09:00-12:00", "15:00-19:00"], "friday": ["22:00-02:00"]}
    await shot(page, "availability")


async def test_bad_slot_shows_error_next_to_its_day_and_saves_nothing(site: Site) -> None:
    expert_id, page = await _open(site, "+390600000503", "anna@example.org")

    await page.locator("#f-monday").fill("09:00-12:00")
    await page.locator("#f-wednesday").fill("25:00-26:00")
    await page.locator("#f-thursday").fill("09:00-12:00, 11:00-13:00")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.locator("#planning-submit").click()

    assert (await answer.value).status == 422
    error = page.locator("#f-wednesday-error")
    await expect(error).to_contain_text("25:00-26:00")
    await expect(page.locator("#f-wednesday")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#f-wednesday")).to_have_value("25:00-26:00")
    await expect(page.locator("#f-thursday-error")).to_contain_text("overlap")
    await expect(page.locator("#f-monday")).to_have_value("09:00-12:00")
    await expect(page.locator("#f-monday-error")).to_have_count(0)
    await shot(page, "availability-error")
    status, body = await site.api("GET", f"/api/v1/experts/{expert_id}/planning")
    assert status == 200
    assert body["has_planning"] is False
    assert body["weekly"] == {}


async def test_switching_the_phone_off_shows_in_the_api(site: Site) -> None:
    expert_id, page = await _open(site, "+390600000504", "anna@example.org")
    await expect(page.locator("#ch-phone")).to_be_checked()

    await page.locator("#ch-phone").uncheck()
    await page.locator("#channels-submit").click()

    await expect(page.locator("#ch-phone")).not_to_be_checked()
    await expect(page.locator("#ch-video")).to_be_checked()
    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "channel_off")
    body = await _availability(site, expert_id)
    assert body["channels"] == ["chat", "video"]
    assert body["reason"] == "channel_off"

    await page.locator("#ch-phone").check()
    await page.locator("#ch-chat").uncheck()
    await page.locator("#channels-submit").click()

    await expect(page.locator("#ch-chat")).not_to_be_checked()
    body = await _availability(site, expert_id)
    assert body["channels"] == ["phone", "video"]
    assert body["reason"] == "open"


async def test_today_only_in_italian(site: Site) -> None:
    expert_id, page = await _open(site, "+390600000505", "anna@example.org", lang="it")
    status, _ = await site.api(
        "PUT",
        f"/api/v1/experts/{expert_id}/planning",
        {"timezone": "Europe/Rome", "weekly": {d: ["00:00-00:00"] for d in WEEK}},
    )
    assert status == 200
    today = datetime.now(ZoneInfo("Europe/Rome")).date().isoformat()
    await page.reload()
    await expect(page.locator("h1")).to_have_text("Disponibilità")
    await expect(page.locator("#today-slots")).to_have_text("Aperto tutto il giorno.")

    await page.locator("#f-today").fill("9:00-25:00")
    await page.locator("#today-submit").click()
    await expect(page.locator("#f-today-error")).to_contain_text("non è una fascia oraria")
    await expect(page.locator("#f-today")).to_have_value("9:00-25:00")

    await page.locator("#f-today").fill("")
    await page.locator("#today-submit").click()
    await expect(page.locator("[role=status]")).to_have_text("Fasce di oggi salvate.")
    await expect(page.locator("#today-slots")).to_have_text("Chiuso tutto il giorno.")
    await expect(page.locator("#today-changed")).to_have_text("modificato solo per oggi")
    await expect(page.locator("#avail-status")).to_have_attribute("data-reason", "outside_hours")
    _, body = await site.api("GET", f"/api/v1/experts/{expert_id}/planning")
    assert body["days"] == {today: []}
    assert (await _availability(site, expert_id))["reason"] == "outside_hours"
    await shot(page, "availability-it")

    await page.locator("#today-weekly").click()

    await expect(page.locator("#today-slots")).to_have_text("Aperto tutto il giorno.")
    await expect(page.locator("#today-changed")).to_have_count(0)
    _, body = await site.api("GET", f"/api/v1/experts/{expert_id}/planning")
    assert body["days"] == {}


async def test_a_slot_running_into_the_next_day_is_refused_on_its_own_day(site: Site) -> None:
    expert_id, page = await _open(site, "+390600000506", "anna@example.org")

    await page.locator("#f-sunday").fill("22:00-03:00")
    await page.locator("#f-monday").fill("01:00-05:00")
    await page.locator("#planning-submit").click()

    await expect(page.locator("#f-sunday-error")).to_contain_text("Monday")
    await expect(page.locator("#f-monday-error")).to_have_count(0)
    _, body = await site.api("GET", f"/api/v1/experts/{expert_id}/planning")
    assert body["has_planning"] is False


async def test_an_expert_changes_only_their_own_availability(site: Site) -> None:
    anna = await site.expert("+390600000507", "anna@example.org")
    _bruno, page = await _open(site, "+390600000508", "bruno@example.org")

    await page.locator("#pause").click()
    await expect(page.locator("#paused-until")).to_be_visible()

    assert (await _availability(site, anna))["reason"] == "open"
    # The expert is the signed-in one, never an id in the URL.
    response = await page.goto(site.base + f"/panel/availability/{anna}")
    assert response is not None and response.status == 404
