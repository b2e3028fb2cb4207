"""My consultations in a real browser: the list 20 a page, newest first, and the billing
detail of one consultation, checked against the rows in PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.async_api import expect

from ivr_engine.domain.money import FULL, HALVED, LineType, Tariff, compute_bill
from tests.browser.conftest import Site, shot

pytestmark = pytest.mark.browser

TARIFF = Tariff(
    rate=Decimal("1.50"),
    category="general",
    line_type=LineType.MOBILE,
    transfer_per_minute=Decimal("0.2000"),
    rule=FULL,
    commission_percent=Decimal("20.00"),
    granularity_seconds=1,
    minimum_seconds=0,
)
START = datetime(2025, 3, 12, 13, 5, 9, tzinfo=UTC)  # 14:05:09 in Rome, the default zone


async def client(
    site: Site, expert_id: int, phone: str, alias: str, email: str = "", language: str = "en"
) -> int:
    """A client who asked this expert for a consultation (their request is waiting)."""
    request_id = await site.request(
        expert_id, phone, alias=alias, client_email=email, language=language
    )
    return int(await site.pool.fetchval("SELECT client_id FROM requests WHERE id = $1", request_id))


async def consultation(
    site: Site,
    expert_id: int,
    client_id: int,
    *,
    start: datetime = START,
    seconds: int | None = 124,
    tariff: Tariff = TARIFF,
) -> int:
    """A finished consultation (its request completed) billed as the engine bills it;
    ``seconds=None``: one still going on, with no bill yet."""
    bill = compute_bill(tariff, seconds) if seconds is not None else None
    end = start + timedelta(seconds=seconds) if seconds is not None else None
    async with site.pool.acquire() as conn, conn.transaction():
        if bill is None:  # a client is in an expert's list once at most (migration 0010)
            await conn.execute(
                "UPDATE requests SET state = 'lost' WHERE expert_id = $1 AND client_id = $2"
                " AND state = 'waiting'",
                expert_id,
                client_id,
            )
        request_id = await conn.fetchval(
            "INSERT INTO requests (expert_id, client_id, state, ended_at)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            expert_id,
            client_id,
            "completed" if bill else "connected",
            end,
        )
        return int(
            await conn.fetchval(
                "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
                " expert_channel_id, client_channel_id, rate_per_minute, bridge_start,"
                " bridge_end, billed_seconds, ended_by, category, line_type,"
                " transfer_per_minute, transfer_factor, transfer_rule, commission_percent,"
                " granularity_seconds, minimum_seconds, charged_seconds, client_price,"
                " transfer_cost, commission, earnings, bill_note) VALUES ($1, $2, $3,"
                " 'bridge-' || $1::bigint, 'e-' || $1::bigint, 'c-' || $1::bigint, $4, $5, $6, $7,"
                " $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
                " RETURNING id",
                request_id,
                expert_id,
                client_id,
                tariff.rate,
                start,
                end,
                seconds,
                "client" if bill else "",
                tariff.category,
                tariff.line_type.value,
                tariff.transfer_per_minute,
                tariff.rule.factor,
                tariff.rule.description,
                tariff.commission_percent,
                tariff.granularity_seconds,
                tariff.minimum_seconds,
                bill.charged_seconds if bill else None,
                bill.client_price if bill else None,
                bill.transfer_cost if bill else None,
                bill.commission if bill else None,
                bill.earnings if bill else None,
                bill.note if bill else "",
            )
        )


async def test_list_pages_twenty_at_a_time_newest_first(site: Site) -> None:
    anna = await site.expert("+390600000401", "anna@example.org")
    marco = await client(site, anna, "+393330000411", "Marco")
    ids = [
        await consultation(site, anna, marco, start=START + timedelta(hours=n), seconds=60 + n)
        for n in range(25)
    ]
    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + "/panel/consultations")
    rows = page.locator("#consultations tbody tr")
    await expect(rows).to_have_count(20)
    shown = [
        int(v or 0) for v in await rows.evaluate_all("rs => rs.map(r => r.dataset.consultationId)")
    ]
    assert shown == ids[::-1][:20]
    newest = page.locator(f"tr[data-consultation-id='{ids[-1]}']")
    await expect(newest).to_contain_text("2025-03-13 14:05")  # START + 24 h, in Rome
    await expect(newest).to_contain_text("Marco")
    await expect(newest).to_contain_text("1:24")  # 84 s
    await expect(newest.locator("a", has_text="Marco")).to_have_attribute(
        "href", f"/panel/clients/{marco}"
    )
    await expect(page.locator("#pager-newest")).to_have_count(0)
    await shot(page, "consultations")

    await page.locator("#pager-older").click()
    await expect(rows).to_have_count(5)
    shown = [
        int(v or 0) for v in await rows.evaluate_all("rs => rs.map(r => r.dataset.consultationId)")
    ]
    assert shown == ids[::-1][20:]
    assert f"before={ids[5]}" in page.url
    await expect(page.locator("#pager-older")).to_have_count(0)

    await page.locator("#pager-newest").click()
    await expect(rows).to_have_count(20)
    await expect(rows.first).to_have_attribute("data-consultation-id", str(ids[-1]))


async def test_detail_explains_the_bill_as_stored(site: Site) -> None:
    anna = await site.expert("+390600000402", "anna@example.org")
    marco = await client(site, anna, "+393330000412", "Marco")
    consultation_id = await consultation(site, anna, marco, seconds=124)
    row = await site.pool.fetchrow("SELECT * FROM consultations WHERE id = $1", consultation_id)
    assert (row["client_price"], row["commission"]) == (Decimal("3.10"), Decimal("0.62"))
    assert (row["transfer_cost"], row["earnings"]) == (Decimal("0.41"), Decimal("2.07"))

    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + "/panel/consultations")
    await page.locator(f"a[aria-label='Details of consultation no. {consultation_id}']").click()
    await expect(page.locator("h1")).to_have_text(f"Consultation no. {consultation_id}")
    await expect(page.locator("#detail-start")).to_have_text("2025-03-12 14:05:09")
    await expect(page.locator("#detail-end")).to_have_text("2025-03-12 14:07:13")
    await expect(page.locator("#detail-ended-by")).to_have_text("the client")
    await expect(page.locator("#detail-billed")).to_contain_text("2:04 (124 s)")
    await expect(page.locator("#detail-charged")).to_contain_text("2:04 (124 s)")
    await expect(page.locator("#detail-category")).to_have_text("general")
    await expect(page.locator("#detail-rate")).to_contain_text("€1.50 per minute")
    await expect(page.locator("#detail-price")).to_contain_text("€3.10")
    await expect(page.locator("#detail-commission")).to_contain_text("€0.62")
    await expect(page.locator("#detail-commission")).to_contain_text("keeps 20 % of")
    await expect(page.locator("#detail-transfer")).to_contain_text("€0.41")
    await expect(page.locator("#detail-transfer")).to_contain_text(
        "Your phone is a mobile line: putting a call through to it costs €0.20 per minute"
    )
    await expect(page.locator("#detail-transfer")).to_contain_text("You pay this cost in full.")
    await expect(page.locator("#detail-rule")).to_have_text("full transfer cost")
    await expect(page.locator("#detail-earnings")).to_contain_text("€2.07")
    await expect(page.locator("#detail-sum")).to_have_text("€3.10 − €0.62 − €0.41 = €2.07")
    await expect(page.locator("#detail-note")).to_have_count(0)
    await shot(page, "consultation_detail")

    # A rate so low that the call costs more than is left: the bill caps it and says so.
    cheap = replace(TARIFF, rate=Decimal("0.10"))
    capped = await consultation(site, anna, marco, seconds=60, tariff=cheap)
    await page.goto(site.base + f"/panel/consultations/{capped}")
    await expect(page.locator("#detail-note")).to_contain_text("transfer cost capped at 0.08")
    await expect(page.locator("#detail-sum")).to_have_text("€0.10 − €0.02 − €0.08 = €0.00")

    # The same figures through the JSON API (the engine's own view of the consultation).
    status, body = await site.api("GET", f"/api/v1/consultations/{consultation_id}")
    assert status == 200
    assert (body["client_price"], body["earnings"]) == ("3.10", "2.07")


async def test_detail_in_italian_with_a_halved_transfer(site: Site) -> None:
    anna = await site.expert(
        "+390600000403", "anna@example.org", rate="1.80", category="cartomancy", language="it"
    )
    marco = await client(site, anna, "+393330000413", "Marco")
    halved = Tariff(
        rate=Decimal("1.80"),
        category="cartomancy",
        line_type=LineType.FIXED,
        transfer_per_minute=Decimal("0.1000"),
        rule=HALVED,
        commission_percent=Decimal("12.50"),
        granularity_seconds=30,
        minimum_seconds=60,
    )
    consultation_id = await consultation(site, anna, marco, seconds=95, tariff=halved)
    row = await site.pool.fetchrow("SELECT * FROM consultations WHERE id = $1", consultation_id)
    # 95 s charged as 120 s (steps of 30 s): 3.60 €, 12.5 % = 0.45, half of 0.10 €/min = 0.10.
    assert (row["charged_seconds"], row["client_price"]) == (120, Decimal("3.60"))
    assert (row["commission"], row["transfer_cost"]) == (Decimal("0.45"), Decimal("0.10"))
    assert row["earnings"] == Decimal("3.05")

    page = await site.sign_in("anna@example.org", lang="it")
    await page.goto(site.base + f"/panel/consultations/{consultation_id}")
    await expect(page.locator("h1")).to_have_text(f"Consulto n. {consultation_id}")
    await expect(page.locator("#detail-charged")).to_contain_text("2:00 (120 s)")
    await expect(page.locator("#detail-charged")).to_contain_text("a scatti di 30 secondi")
    await expect(page.locator("#detail-charged")).to_contain_text("almeno 60 secondi")
    await expect(page.locator("#detail-rate")).to_contain_text("1,80 € al minuto")
    await expect(page.locator("#detail-price")).to_contain_text("3,60 €")
    await expect(page.locator("#detail-commission")).to_contain_text("trattiene il 12,5 %")
    await expect(page.locator("#detail-transfer")).to_contain_text("linea fissa")
    await expect(page.locator("#detail-transfer")).to_contain_text("Ne paghi la metà.")
    await expect(page.locator("#detail-sum")).to_have_text("3,60 € − 0,45 € − 0,10 € = 3,05 €")
    await shot(page, "consultation_detail_it")

    await page.goto(site.base + "/panel/consultations")
    row_cells = page.locator(f"tr[data-consultation-id='{consultation_id}']")
    await expect(row_cells).to_contain_text("3,60 €")
    await expect(row_cells).to_contain_text("3,05 €")
    await expect(row_cells).to_contain_text("1:35")


async def test_consultation_still_going_on_has_no_bill_yet(site: Site) -> None:
    anna = await site.expert("+390600000404", "anna@example.org")
    marco = await client(site, anna, "+393330000414", "Marco")
    consultation_id = await consultation(site, anna, marco, seconds=None)
    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + "/panel/consultations")
    await expect(page.locator(f"tr[data-consultation-id='{consultation_id}']")).to_contain_text(
        "in progress"
    )
    await page.goto(site.base + f"/panel/consultations/{consultation_id}")
    await expect(page.locator("#detail-not-billed")).to_be_visible()
    await expect(page.locator("#detail-price")).to_contain_text("—")


async def test_another_experts_consultation_is_not_found(site: Site) -> None:
    anna = await site.expert("+390600000405", "anna@example.org")
    await site.expert("+390600000406", "bruno@example.org", alias="Bruno")
    marco = await client(site, anna, "+393330000415", "Marco")
    consultation_id = await consultation(site, anna, marco)

    page = await site.sign_in("bruno@example.org")
    for path in (str(consultation_id), "999999", "abc", "99999999999999999999"):
        response = await page.goto(site.base + f"/panel/consultations/{path}")
        assert response is not None and response.status == 404, path
        await expect(page.locator("[role=alert]")).to_contain_text("not yours")
    await page.goto(site.base + "/panel/consultations")
    await expect(page.locator("#consultations-empty")).to_be_visible()
    response = await page.goto(site.base + "/panel/consultations?before=x")
    assert response is not None and response.status == 404
