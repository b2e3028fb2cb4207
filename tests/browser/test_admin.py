"""The service staff's pages: live calls across experts, the day's figures, and the
experts (create, edit, the acceptance prompt), and that experts are kept out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from ivr_engine.store import offers
from tests.browser.conftest import PASSWORD, Site, shot

pytestmark = pytest.mark.browser


async def _connect(site: Site, request_id: int, waited: timedelta | None = None) -> None:
    """What the engine does at the bridge: the consultation row, then the state."""
    async with site.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT expert_id, client_id, created_at FROM requests WHERE id = $1", request_id
        )
        start = row["created_at"] + waited if waited is not None else datetime.now(UTC)
        await conn.execute(
            "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
            " expert_channel_id, client_channel_id, rate_per_minute, bridge_start)"
            " VALUES ($1, $2, $3, $4, $4 || '-e', $4 || '-c', 1.50, $5)",
            request_id,
            row["expert_id"],
            row["client_id"],
            f"bridge-{request_id}",
            start,
        )
        await conn.execute(
            "UPDATE requests SET state = 'connected', updated_at = now() WHERE id = $1",
            request_id,
        )


async def _end(site: Site, request_id: int, state: str, reason: str) -> None:
    await site.pool.execute(
        "UPDATE requests SET state = $2, end_reason = $3, ended_at = now(), updated_at = now()"
        " WHERE id = $1",
        request_id,
        state,
        reason,
    )


async def _submit(page: Page, button: str = "#expert-save") -> int:
    async with page.expect_response(lambda r: r.request.method == "POST") as info:
        await page.locator(button).click()
    return (await info.value).status


async def test_admin_lands_on_the_overview_and_a_call_shows_up_live(site: Site) -> None:
    admin = await site.admin()
    anna = await site.expert("+390600000501", "anna@example.org", alias="Anna")
    request_id = await site.request(anna, "+393330000511", alias="Marco")
    page = await site.sign_in(admin)
    assert page.url == site.base + "/admin"
    await expect(page.locator("#live-empty")).to_be_visible()
    await expect(page.locator("#live-calls")).to_have_attribute("data-live", "open")

    await _connect(site, request_id)

    row = page.locator(f"#live-table tr[data-request-id='{request_id}']")
    await expect(row).to_contain_text("Anna")  # no reload: the event stream brought it
    await expect(row).to_contain_text("Marco")
    await expect(row).to_contain_text("In consultation")
    await expect(row.locator("time[data-since]")).to_have_text(re.compile(r"^\d+:\d\d$"))
    await expect(page.locator("#live-calls")).to_have_attribute("data-refreshed", re.compile("."))
    await shot(page, "admin-overview")


async def test_the_figures_count_today_in_rome_only(site: Site) -> None:
    admin = await site.admin()
    anna = await site.expert("+390600000502", "anna@example.org", alias="Anna")
    bruno = await site.expert("+390600000503", "bruno@example.org", alias="Bruno")
    await site.request(anna, "+393330000521")  # still waiting
    left = await site.request(anna, "+393330000522")
    status, body = await site.api("DELETE", f"/api/v1/requests/{left}")  # the client leaves
    assert status == 200, body
    refused = await site.request(anna, "+393330000523")
    await _end(site, refused, "refused", "expert_refused")
    answered = await site.request(bruno, "+393330000524")
    await _connect(site, answered, waited=timedelta(seconds=42))
    # A request of yesterday (in Rome) that was lost: it counts nowhere today.
    rome = ZoneInfo("Europe/Rome")
    yesterday = datetime.combine(datetime.now(rome).date(), time(0), rome) - timedelta(hours=1)
    old = await site.request(bruno, "+393330000525")
    await site.pool.execute(
        "UPDATE requests SET state = 'lost', end_reason = 'client_hung_up',"
        " created_at = $2::timestamptz, ended_at = $2::timestamptz + interval '5 minutes'"
        " WHERE id = $1",
        old,
        yesterday - timedelta(minutes=30),
    )

    page = await site.sign_in(admin)

    figures = page.locator("#figures")
    await expect(figures.locator("#fig-received")).to_have_text("4")
    await expect(figures.locator("#fig-answered")).to_have_text("1")
    await expect(figures.locator("#fig-refused")).to_have_text("1")
    await expect(figures.locator("#fig-lost")).to_have_text("1")
    await expect(figures.locator("#fig-speed")).to_have_text("0:42")
    await expect(figures.locator("#fig-abandonment")).to_have_text("50.0%")  # 1 of 2 ended
    await expect(figures).to_contain_text("Europe/Rome")
    await expect(page.locator("#figures-legend")).to_contain_text("client left")
    await shot(page, "admin-figures")


async def test_create_an_expert_who_then_signs_in(site: Site) -> None:
    admin = await site.admin()
    page = await site.sign_in(admin)
    await page.goto(site.base + "/admin/experts")
    await expect(page.locator("#experts-empty")).to_be_visible()
    await page.locator("#new-expert").click()

    await page.locator("#f-alias").fill("Carla")
    await page.locator("#f-category").select_option("cartomancy")
    await page.locator("#f-phone").fill("+39 333 765 4321")
    await page.locator("#f-rate").fill("1,80")
    await page.locator("#f-language").select_option("it")
    await page.locator("#f-email").fill("Carla@Example.org")
    await page.locator("#f-acceptance").uncheck()
    await page.locator("#f-password").fill(PASSWORD)
    await page.locator("#expert-save").click()
    await page.wait_for_url(site.base + "/admin/experts?done=created")

    row = await site.pool.fetchrow(
        "SELECT e.*, a.role FROM experts e JOIN accounts a ON a.expert_id = e.id"
        " WHERE a.email = 'carla@example.org'"
    )
    assert row["alias"] == "Carla" and row["category"] == "cartomancy"
    assert row["phone"] == "+393337654321" and row["rate_per_minute"] == Decimal("1.80")
    assert row["language"] == "it" and row["acceptance_ivr"] is False
    assert row["role"] == "expert"
    listed = page.locator(f"#expert-{row['id']}")
    await expect(listed).to_contain_text("Cartomancy")
    await expect(listed.locator("[data-line]")).to_have_text("mobile")
    await expect(listed.locator("[data-acceptance]")).to_have_text("off")
    await expect(listed.locator("[data-login]")).to_have_text("yes")
    await shot(page, "admin-experts")

    carla = await site.sign_in("carla@example.org")
    assert carla.url == site.base + "/panel"


async def test_edit_an_experts_rate(site: Site) -> None:
    admin = await site.admin()
    anna = await site.expert("+390600000504", "anna@example.org", alias="Anna")
    page = await site.sign_in(admin)
    await page.goto(site.base + "/admin/experts")
    await page.get_by_role("link", name="Edit Anna").click()
    await expect(page.locator("#f-rate")).to_have_value("1.50")
    await expect(page.locator("#f-phone-hint")).to_contain_text("fixed line")
    await expect(page.locator("#login-state")).to_have_attribute("data-login", "yes")

    await page.locator("#f-rate").fill("2.40")
    await page.locator("#expert-save").click()

    await page.wait_for_url(f"{site.base}/admin/experts/{anna}?saved=1")
    await expect(page.locator("[role=status]")).to_have_text("Saved.")
    await expect(page.locator("#f-rate")).to_have_value("2.40")
    rate = await site.pool.fetchval("SELECT rate_per_minute FROM experts WHERE id = $1", anna)
    assert rate == Decimal("2.40")


async def test_bad_phone_and_too_high_rate_are_shown_next_to_their_fields_in_italian(
    site: Site,
) -> None:
    admin = await site.admin()
    page = await site.sign_in(admin, lang="it")
    # A staff account has no language of its own (it reads as English): the switch decides.
    await page.goto(site.base + "/lang/it?next=/admin/experts/new")
    await expect(page.locator("h1")).to_have_text("Nuovo esperto")
    await page.locator("#f-alias").fill("Dario")
    await page.locator("#f-phone").fill("chiamami")
    await page.locator("#f-rate").fill("150,00")

    assert await _submit(page) == 422

    await expect(page.locator("#f-phone-error")).to_contain_text("Non è un numero di telefono")
    await expect(page.locator("#f-rate-error")).to_have_text(
        "La tariffa deve essere tra 0,10 € e 100,00 € al minuto."
    )
    await expect(page.locator("#f-rate")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#f-alias")).to_have_value("Dario")  # what was typed stays
    await expect(page.locator("#f-rate")).to_have_value("150,00")
    await expect(page.locator("#f-alias-error")).to_have_count(0)
    await shot(page, "admin-expert-errors-it")
    assert await site.pool.fetchval("SELECT count(*) FROM experts") == 0

    await page.locator("#f-phone").fill("+39 06 1234 5678")
    await page.locator("#f-rate").fill("1,80")
    await page.locator("#f-password").fill("corta")
    assert await _submit(page) == 422
    await expect(page.locator("#f-password-error")).to_have_text(
        "La password deve avere almeno 10 caratteri."
    )
    await expect(page.locator("#f-email-error")).to_have_text(
        "Per accedere al pannello serve un'email."
    )
    assert await site.pool.fetchval("SELECT count(*) FROM experts") == 0


async def test_a_duplicate_email_is_refused_next_to_the_email_and_creates_nothing(
    site: Site,
) -> None:
    admin = await site.admin()
    await site.expert("+390600000505", "anna@example.org", alias="Anna")
    page = await site.sign_in(admin)
    await page.goto(site.base + "/admin/experts/new")
    await page.locator("#f-alias").fill("Anna bis")
    await page.locator("#f-phone").fill("+393330000531")
    await page.locator("#f-rate").fill("1.50")
    await page.locator("#f-email").fill("anna@example.org")
    await page.locator("#f-password").fill(PASSWORD)

    assert await _submit(page) == 422

    await expect(page.locator("#f-email-error")).to_have_text(
        "Another account already uses this email."
    )
    # the expert row and the account are one transaction: neither was kept
    assert await site.pool.fetchval("SELECT count(*) FROM experts") == 1
    assert await site.pool.fetchval("SELECT count(*) FROM accounts") == 2


async def test_switch_the_acceptance_prompt_from_the_list_and_the_edit_page(site: Site) -> None:
    admin = await site.admin()
    anna = await site.expert("+390600000506", "anna@example.org", alias="Anna")
    page = await site.sign_in(admin)
    await page.goto(site.base + "/admin/experts")
    row = page.locator(f"#expert-{anna}")
    await expect(row.locator("[data-acceptance]")).to_have_text("on")

    await page.get_by_role("button", name="Switch off the acceptance prompt for Anna").click()

    await expect(page.locator("[role=status]")).to_have_text("Acceptance prompt updated.")
    await expect(row.locator("[data-acceptance]")).to_have_text("off")
    sql = "SELECT acceptance_ivr FROM experts WHERE id = $1"
    assert await site.pool.fetchval(sql, anna) is False

    await page.goto(f"{site.base}/admin/experts/{anna}")
    await expect(page.locator("#acceptance")).to_contain_text("Acceptance prompt: off.")
    await page.locator("#acceptance-toggle").click()
    await expect(page.locator("#acceptance")).to_contain_text("Acceptance prompt: on.")
    assert await site.pool.fetchval(sql, anna) is True
    await shot(page, "admin-expert-edit")


async def test_an_unknown_expert_is_a_404_page(site: Site) -> None:
    admin = await site.admin()
    page = await site.sign_in(admin)
    for path in ("/admin/experts/9999", "/admin/experts/nobody"):
        response = await page.goto(site.base + path)
        assert response is not None and response.status == 404
        await expect(page.locator("[role=alert]")).to_have_text(
            "This page does not exist, or it is not yours."
        )
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    posted = await page.request.post(
        site.base + "/admin/experts/9999/acceptance", form={"csrf": csrf or "", "on": "0"}
    )
    assert posted.status == 404


async def test_an_expert_is_kept_out_of_the_admin_pages(site: Site) -> None:
    await site.expert("+390600000507", "anna@example.org", alias="Anna")
    page = await site.sign_in("anna@example.org")
    for path in ("/admin", "/admin/experts", "/admin/experts/new", "/admin/live"):
        response = await page.goto(site.base + path)
        assert response is not None and response.status == 403, path
        await expect(page.locator("[role=alert]")).to_have_text("You cannot open this page.")

    await page.goto(site.base + "/panel")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    posted = await page.request.post(
        site.base + "/admin/experts/new",
        form={
            "csrf": csrf or "",  # the expert's own, valid token: refused for the role
            "alias": "Intruder",
            "category": "general",
            "phone": "+393330000541",
            "rate": "1.50",
            "language": "en",
            "email": "intruder@example.org",
            "password": "a long enough password",
        },
    )
    assert posted.status == 403
    assert "You cannot open this page." in await posted.text()
    assert await site.pool.fetchval("SELECT count(*) FROM experts") == 1
    assert await site.pool.fetchval("SELECT count(*) FROM accounts") == 1


async def test_the_overview_shows_who_was_offered_a_category_request_and_who_took_it(
    site: Site,
) -> None:
    admin = await site.admin()
    anna = await site.expert(
        "+390600000541", "anna@example.org", alias="Anna", category="cartomancy"
    )
    await site.expert("+390600000542", "bruno@example.org", alias="Bruno", category="cartomancy")
    status, body = await site.api(
        "POST",
        "/api/v1/requests",
        {"category": "cartomancy", "client_phone": "+393330000541", "client_alias": "Marco"},
    )
    assert status == 201, body
    # What the fan-out does (Asterisk is away here): both offered, Anna wins, Bruno is told.
    job = await offers.claim_next(site.pool, None, 3)
    assert job is not None and len(job.candidates) == 2
    won = next(c for c in job.candidates if c.expert_id == anna)
    other = next(c for c in job.candidates if c.expert_id != anna)
    assert await offers.win(site.pool, body["id"], won.offer_id, anna)
    await offers.end_offer(site.pool, other.offer_id, "taken")

    page = await site.sign_in(admin)
    title = await page.title()
    assert title.startswith("Service overview") and "Category" not in title, title
    row = page.locator(f"#category-request-{body['id']}")
    await expect(row).to_contain_text("cartomancy")
    await expect(row).to_contain_text("Marco")
    await expect(row.locator(".offered")).to_contain_text("Anna: won")
    await expect(row.locator(".offered")).to_contain_text("Bruno: taken")
    await expect(row.locator(".taken-by")).to_have_text("Anna")
