"""My consultation types in a real browser: the number (line type, transfer cost), the rate
and the phone menu PIN, each checked in the database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.async_api import Page, expect

from ivr_engine.domain.pin import verify_pin
from tests.browser.conftest import Site, shot

pytestmark = pytest.mark.browser

MOBILE = "+393331234567"
FIXED = "+390612345678"


async def _open(site: Site, email: str, **kw: str) -> tuple[int, Page]:
    expert_id = await site.expert(kw.pop("phone", MOBILE), email, **kw)
    page = await site.sign_in(email, lang=kw.get("language", "en"))
    await page.goto(site.base + "/panel/profile")
    return expert_id, page


async def _column(site: Site, expert_id: int, column: str) -> object:
    # The column name is the test's own constant, never input.
    return await site.pool.fetchval(f"SELECT {column} FROM experts WHERE id = $1", expert_id)


async def test_number_line_type_and_transfer_cost(site: Site) -> None:
    expert_id, page = await _open(site, "anna@example.org", phone=FIXED)
    await expect(page.locator("#line-type")).to_have_attribute("data-line", "fixed")
    await expect(page.locator("#email")).to_have_text("anna@example.org")
    await expect(page.locator("#category")).to_have_text("General")
    await expect(page.locator("#language")).to_have_text("English")

    await page.locator("#f-phone").fill("+39 333 123 4567")
    await page.locator("#phone-submit").click()

    await expect(page.locator("#phone-section [role=status]")).to_have_text("Number saved.")
    await expect(page.locator("#line-type")).to_have_text("mobile")
    await expect(page.locator("#transfer-cost")).to_have_text("€0.20 per minute")
    await expect(page.locator("#you-pay")).to_have_text("€0.20")
    assert await _column(site, expert_id, "phone") == MOBILE
    await shot(page, "profile")

    await page.locator("#f-phone").fill("06 1234 5678")
    await page.locator("#phone-submit").click()

    await expect(page.locator("#line-type")).to_have_text("fixed line")
    await expect(page.locator("#transfer-cost")).to_have_text("€0.01 per minute")
    await expect(page.locator("#you-pay")).to_have_text("€0.01")
    assert await _column(site, expert_id, "phone") == "+390612345678"  # stored in E.164


@pytest.mark.parametrize("typed", ["+39 123", "call me", "+39 899 123456"])
async def test_an_invalid_number_is_refused_and_the_old_one_kept(site: Site, typed: str) -> None:
    expert_id, page = await _open(site, "anna@example.org")

    await page.locator("#f-phone").fill(typed)
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.locator("#phone-submit").click()

    assert (await answer.value).status == 422
    await expect(page.locator("#f-phone-error")).to_be_visible()
    await expect(page.locator("#f-phone")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#f-phone")).to_have_value(typed)
    await expect(page.locator("#phone-now")).to_have_text(MOBILE)
    assert await _column(site, expert_id, "phone") == MOBILE
    if typed == "+39 123":
        await shot(page, "profile-error")


async def test_rate_change_in_italian_changes_the_transfer_cost(site: Site) -> None:
    expert_id, page = await _open(
        site, "anna@example.org", category="cartomancy", language="it", rate="1.50"
    )
    await expect(page.locator("#category")).to_have_text("Cartomanzia")
    await expect(page.locator("#transfer-rule")).to_have_text(
        "paghi l'intero costo di trasferimento"
    )
    await expect(page.locator("#f-rate")).to_have_value("1,50")

    await page.locator("#f-rate").fill("1,80")
    await page.locator("#rate-submit").click()

    await expect(page.locator("#rate-section [role=status]")).to_have_text("Tariffa salvata.")
    await expect(page.locator("#rate-now")).to_have_text("1,80 € al minuto")
    await expect(page.locator("#transfer-rule")).to_contain_text("dimezzato")
    await expect(page.locator("#you-pay")).to_have_text("0,10 €")
    assert await _column(site, expert_id, "rate_per_minute") == Decimal("1.80")

    await page.locator("#f-rate").fill("2.50")
    await page.locator("#rate-submit").click()

    await expect(page.locator("#transfer-rule")).to_contain_text("non lo paghi")
    await expect(page.locator("#you-pay")).to_have_text("0,00 €")
    assert await _column(site, expert_id, "rate_per_minute") == Decimal("2.50")
    await shot(page, "profile-it")

    for typed, error in [("150", "tra 0,10 e 100,00"), ("1,234", "centesimi"), ("tanto", "euro")]:
        await page.locator("#f-rate").fill(typed)
        await page.locator("#rate-submit").click()
        await expect(page.locator("#f-rate-error")).to_contain_text(error)
        await expect(page.locator("#f-rate")).to_have_value(typed)
    assert await _column(site, expert_id, "rate_per_minute") == Decimal("2.50")


async def test_pin_is_set_and_never_shown(site: Site) -> None:
    expert_id, page = await _open(site, "anna@example.org")
    await expect(page.locator("#pin-state")).to_contain_text("No PIN yet")

    await page.locator("#f-pin").fill("432109")
    await page.locator("#f-pin_again").fill("432109")
    await page.locator("#pin-submit").click()

    await expect(page.locator("#pin-section [role=status]")).to_have_text("PIN changed.")
    await expect(page.locator("#pin-state")).to_contain_text("A PIN is set")
    stored = await _column(site, expert_id, "pin_hash")
    assert isinstance(stored, str)
    assert verify_pin("432109", stored)
    assert "432109" not in await page.content()


@pytest.mark.parametrize(
    ("pin", "again", "field", "error"),
    [
        ("123456", "123457", "pin_again", "different"),
        ("12a456", "12a456", "pin", "6 to 8 digits"),
        ("4321", "4321", "pin", "6 to 8 digits"),
        ("123456789", "123456789", "pin", "6 to 8 digits"),
    ],
)
async def test_a_bad_pin_is_refused(
    site: Site, pin: str, again: str, field: str, error: str
) -> None:
    expert_id, page = await _open(site, "anna@example.org")

    await page.locator("#f-pin").fill(pin)
    await page.locator("#f-pin_again").fill(again)
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.locator("#pin-submit").click()

    assert (await answer.value).status == 422
    await expect(page.locator(f"#f-{field}-error")).to_contain_text(error)
    await expect(page.locator("#f-pin")).to_have_value("")
    await expect(page.locator("#f-pin_again")).to_have_value("")
    assert f'value="{again}"' not in await page.content()
    assert await _column(site, expert_id, "pin_hash") is None


async def test_an_expert_changes_only_their_own_profile(site: Site) -> None:
    anna = await site.expert(FIXED, "anna@example.org")
    _bruno, page = await _open(site, "bruno@example.org")
    await expect(page.locator("#phone-now")).to_have_text(MOBILE)

    await page.locator("#f-rate").fill("3.00")
    await page.locator("#rate-submit").click()

    await expect(page.locator("#rate-now")).to_contain_text("3.00")
    assert await _column(site, anna, "rate_per_minute") == Decimal("1.50")
    response = await page.goto(site.base + f"/panel/profile/{anna}")
    assert response is not None and response.status == 404
