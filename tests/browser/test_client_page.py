"""The Client page in a real browser: the history with this expert, private notes, and a
message that reaches the client by email through the outbox."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Site, shot
from tests.browser.test_consultations import START, client, consultation

pytestmark = pytest.mark.browser


async def csrf_of(page: Page) -> str:
    return await page.locator("input[name=csrf]").first.get_attribute("value") or ""


async def test_history_totals_match_the_consultations(site: Site) -> None:
    anna = await site.expert("+390600000501", "anna@example.org", alias="Tarot Anna")
    marco = await client(site, anna, "+393330000511", "Marco", "marco@example.org")
    other = await client(site, anna, "+393330000512", "Giulia")
    ids = [
        await consultation(site, anna, marco, start=START + timedelta(days=n), seconds=s)
        for n, s in enumerate((124, 200, 61))
    ]
    await consultation(site, anna, other, seconds=600)  # another client: not counted
    totals = await site.pool.fetchrow(
        "SELECT count(*) AS n, sum(billed_seconds) AS s, sum(client_price) AS p,"
        " sum(earnings) AS e FROM consultations WHERE expert_id = $1 AND client_id = $2",
        anna,
        marco,
    )
    assert (totals["n"], totals["s"]) == (3, 385)
    assert (totals["p"], totals["e"]) == (Decimal("9.63"), Decimal("6.42"))

    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + f"/panel/clients/{marco}")
    await expect(page.locator("#client-alias")).to_have_text("Client Marco")
    await expect(page.locator("#client-count")).to_have_text("3")
    await expect(page.locator("#client-minutes")).to_have_text("6:25")  # 385 s
    await expect(page.locator("#client-last")).to_have_text("2025-03-14 14:05")
    await expect(page.locator("#client-paid")).to_have_text("€9.63")
    await expect(page.locator("#client-earned")).to_have_text("€6.42")
    rows = page.locator("#client-consultations tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.first).to_have_attribute("data-consultation-id", str(ids[-1]))
    # Privacy: the expert never sees how to reach the client outside the service.
    html = await page.content()
    assert "+393330000511" not in html and "marco@example.org" not in html
    await shot(page, "client")

    await rows.first.locator("a").click()
    await expect(page.locator("h1")).to_have_text(f"Consultation no. {ids[-1]}")
    await page.locator("#detail-client").click()
    await expect(page.locator("#client-count")).to_have_text("3")


async def test_client_without_consultations_yet(site: Site) -> None:
    anna = await site.expert("+390600000502", "anna@example.org")
    marco = await client(site, anna, "+393330000513", "Marco")
    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + "/panel")
    await page.locator("#waiting-list a", has_text="Marco").click()  # the Calls page links here
    await expect(page.locator("#client-no-consultations")).to_be_visible()
    await expect(page.locator("#client-count")).to_have_text("0")
    await expect(page.locator("#client-paid")).to_have_text("€0.00")
    assert page.url.endswith(f"/panel/clients/{marco}")


async def test_add_a_note_and_an_empty_one_is_refused(site: Site) -> None:
    anna = await site.expert("+390600000503", "anna@example.org")
    marco = await client(site, anna, "+393330000514", "Marco")
    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + f"/panel/clients/{marco}")
    await expect(page.locator("#client-notes-empty")).to_be_visible()

    await page.locator("#f-note").fill("   ")
    await page.locator("#note-form button[type=submit]").click()
    await expect(page.locator("#f-note-error")).to_have_text("Write something first.")
    await expect(page.locator("#f-note")).to_have_attribute("aria-invalid", "true")

    await page.locator("#f-note").fill("Prefers evening calls.\nAsks about work <b>a lot</b>.")
    await page.locator("#note-form button[type=submit]").click()
    await expect(page.locator("#client-done")).to_have_text("Note added.")
    notes = page.locator("#client-notes article")
    await expect(notes).to_have_count(1)
    await expect(notes.first).to_contain_text("Asks about work <b>a lot</b>.")  # escaped
    rows = await site.pool.fetch("SELECT expert_id, client_id, body FROM client_notes")
    assert [tuple(r) for r in rows] == [
        (anna, marco, "Prefers evening calls.\nAsks about work <b>a lot</b>.")
    ]

    await page.locator("#f-note").fill("x" * 2001)
    await page.locator("#note-form button[type=submit]").click()
    await expect(page.locator("#f-note-error")).to_have_text(
        "Too long: 2001 characters, at most 2000."
    )
    assert await site.pool.fetchval("SELECT count(*) FROM client_notes") == 1


async def test_send_a_message_queues_an_email_to_the_client(site: Site) -> None:
    anna = await site.expert("+390600000504", "anna@example.org", alias="Tarot Anna")
    marco = await client(site, anna, "+393330000515", "Marco", "marco@example.org", "it")
    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + f"/panel/clients/{marco}")
    await expect(page.locator("#messages")).to_have_text("Start a conversation with Marco…")

    await page.locator("#message-form button[type=submit]").click()
    await expect(page.locator("#f-message-error")).to_have_text("Write something first.")
    await expect(page.locator("#f-message")).to_have_attribute(
        "aria-describedby", "f-message-error f-message-hint"
    )
    assert await site.pool.fetchval("SELECT count(*) FROM client_messages") == 0

    await page.locator("#f-message").fill("Hello Marco, how did the interview go?")
    await page.locator("#message-form button[type=submit]").click()
    await expect(page.locator("#client-done")).to_contain_text("Message sent.")
    await expect(page.locator("#client-messages article")).to_have_count(1)
    await expect(page.locator("#client-messages")).to_contain_text("how did the interview go?")
    await shot(page, "client_message_sent")

    message = await site.pool.fetchrow("SELECT * FROM client_messages")
    assert (message["expert_id"], message["client_id"]) == (anna, marco)
    assert message["body"] == "Hello Marco, how did the interview go?"
    email = await site.pool.fetchrow("SELECT * FROM outbox_emails WHERE kind = 'client_message'")
    assert email["to_address"] == "marco@example.org"
    assert email["language"] == "it" and email["message_id"] == message["id"]
    assert json.loads(email["payload"]) == {
        "message_id": message["id"],
        "expert_alias": "Tarot Anna",
        "client_alias": "Marco",
        "message": "Hello Marco, how did the interview go?",
    }


async def test_client_without_email_gets_no_message(site: Site) -> None:
    anna = await site.expert("+390600000505", "anna@example.org")
    marco = await client(site, anna, "+393330000516", "Marco")  # no email address
    page = await site.sign_in("anna@example.org")
    await page.goto(site.base + f"/panel/clients/{marco}")
    await expect(page.locator("#message-no-email")).to_contain_text("has not given an email")
    await page.locator("#f-message").fill("Are you there?")
    await page.locator("#message-form button[type=submit]").click()
    await expect(page.locator("#f-message-error")).to_contain_text(
        "Marco has no email address: the message cannot be delivered"
    )
    await expect(page.locator("#f-message")).to_have_value("Are you there?")
    assert await site.pool.fetchval("SELECT count(*) FROM client_messages") == 0
    assert await site.pool.fetchval("SELECT count(*) FROM outbox_emails") == 0


async def test_italian_page_and_errors(site: Site) -> None:
    anna = await site.expert("+390600000506", "anna@example.org", language="it")
    marco = await client(site, anna, "+393330000517", "Marco", "marco@example.org")
    await consultation(site, anna, marco, seconds=124)
    page = await site.sign_in("anna@example.org", lang="it")
    await page.goto(site.base + f"/panel/clients/{marco}")
    await expect(page.locator("#client-alias")).to_have_text("Cliente Marco")
    await expect(page.locator("#client-paid")).to_have_text("3,10 €")
    await expect(page.locator("#client-earned")).to_have_text("2,07 €")
    await expect(page.locator("#messages")).to_have_text("Inizia una conversazione con Marco…")
    await page.locator("#message-form button[type=submit]").click()
    await expect(page.locator("#f-message-error")).to_have_text("Scrivi qualcosa prima di inviare.")
    await page.locator("#f-note").fill("Preferisce la sera.")
    await page.locator("#note-form button[type=submit]").click()
    await expect(page.locator("#client-done")).to_have_text("Nota aggiunta.")
    await shot(page, "client_it")


async def test_another_experts_client_is_not_found(site: Site) -> None:
    anna = await site.expert("+390600000507", "anna@example.org")
    await site.expert("+390600000508", "bruno@example.org", alias="Bruno")
    marco = await client(site, anna, "+393330000518", "Marco", "marco@example.org")

    page = await site.sign_in("bruno@example.org")
    for path in (str(marco), "999999", "abc", "-1", "99999999999999999999"):
        response = await page.goto(site.base + f"/panel/clients/{path}")
        assert response is not None and response.status == 404, path
        await expect(page.locator("[role=alert]")).to_contain_text("not yours")
    # Posting to Anna's client is refused too, and stores nothing.
    await page.goto(site.base + "/panel")
    token = await csrf_of(page)
    for kind, field in (("notes", "note"), ("messages", "message")):
        posted = await page.request.post(
            site.base + f"/panel/clients/{marco}/{kind}", form={"csrf": token, field: "hi"}
        )
        assert posted.status == 404, kind
    assert await site.pool.fetchval("SELECT count(*) FROM client_notes") == 0
    assert await site.pool.fetchval("SELECT count(*) FROM client_messages") == 0
