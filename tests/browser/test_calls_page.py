"""The Calls page in a real browser: sign in, the waiting list updates live."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from ivr_engine.store import offers
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


async def test_call_now_ends_a_pause_and_is_refused_with_the_phone_line_off(site: Site) -> None:
    expert_id = await site.expert("+390600000331", "anna@example.org")
    request_id = await site.request(expert_id, "+393330000331", alias="Marco")
    channels = f"/api/v1/experts/{expert_id}/channels"
    assert (await site.api("POST", f"/api/v1/experts/{expert_id}/pause"))[0] == 200
    assert (await site.api("PUT", channels, {"phone": False}))[0] == 200
    page = await site.sign_in("anna@example.org")
    call_now = page.get_by_role("button", name="Call now for Marco")

    await call_now.click()
    await expect(page.locator("p.notice")).to_contain_text("Your phone line is switched off")
    _, body = await site.api("GET", f"/api/v1/experts/{expert_id}/availability")
    assert body["paused_until"] is not None  # nothing changed

    await site.api("PUT", channels, {"phone": True})
    await call_now.click()
    await expect(page.locator("p.notice")).to_have_text("Your phone will ring in a moment.")
    _, body = await site.api("GET", f"/api/v1/experts/{expert_id}/availability")
    assert body["paused_until"] is None and body["reason"] == "open"
    assert (
        await site.pool.fetchval(
            "SELECT detail FROM request_events WHERE request_id = $1 ORDER BY id DESC LIMIT 1",
            request_id,
        )
        == "solicited"
    )


async def test_the_page_keeps_updating_after_the_listen_connection_is_cut(site: Site) -> None:
    expert_id = await site.expert("+390600000341", "anna@example.org")
    page = await site.sign_in("anna@example.org")
    await expect(page.locator("#live-calls")).to_have_attribute("data-live", "open")
    cut = await site.pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
    )
    assert cut == 1
    # Whether the new request lands before or after the hub listens again, the page shows
    # it: a change during the gap is covered by the refresh-everything sent on reconnect.
    request_id = await site.request(expert_id, "+393330000341", alias="Marco")
    await expect(page.locator(f"tr[data-request-id='{request_id}']")).to_contain_text("Marco")
    assert site.engine.hub.listening.is_set()
    assert (
        await site.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'"
        )
        == 1
    )


async def test_a_category_request_offered_to_the_expert_shows_live_with_its_outcome(
    site: Site,
) -> None:
    anna = await site.expert("+390600000331", "anna@example.org", category="cartomancy")
    page = await site.sign_in("anna@example.org")
    await expect(page.locator("#live-calls")).to_have_attribute("data-live", "open")
    await expect(page.locator("#offered-list")).to_have_count(0)
    status, body = await site.api(
        "POST",
        "/api/v1/requests",
        {"category": "cartomancy", "client_phone": "+393330000331", "client_alias": "Marco"},
    )
    assert status == 201, body
    # What the fan-out does when it rings her (Asterisk is away here).
    job = await offers.claim_next(site.pool, None, 3)
    assert job is not None and [c.expert_id for c in job.candidates] == [anna]

    row = page.locator(f"#offered-list tr[data-offer-id='{job.candidates[0].offer_id}']")
    await expect(row).to_contain_text("cartomancy")  # no reload: the event stream brought it
    await expect(row).to_contain_text("Marco")
    await expect(row.locator(".outcome")).to_have_text("ringing now")
    await offers.end_offer(site.pool, job.candidates[0].offer_id, "refused")
    await expect(row.locator(".outcome")).to_have_text("you refused it")


async def test_the_winner_hands_a_category_request_back_from_the_panel(site: Site) -> None:
    anna = await site.expert("+390600000341", "anna@example.org", category="cartomancy")
    bruno = await site.expert("+390600000342", "bruno@example.org", category="cartomancy")
    status, body = await site.api(
        "POST",
        "/api/v1/requests",
        {"category": "cartomancy", "client_phone": "+393330000341", "client_alias": "Marco"},
    )
    assert status == 201, body
    # What the fan-out does (Asterisk is away here): Anna wins, the client is being called.
    job = await offers.claim_next(site.pool, None, 3)
    assert job is not None
    won = next(c for c in job.candidates if c.expert_id == anna)
    assert await offers.win(site.pool, body["id"], won.offer_id, anna)
    await site.pool.execute(
        "UPDATE requests SET state = 'ringing_client' WHERE id = $1", body["id"]
    )
    page = await site.sign_in("anna@example.org")
    row = page.locator(f"#offered-list tr[data-offer-id='{won.offer_id}']")
    await expect(row.locator(".outcome")).to_contain_text("you took it")

    await row.get_by_label("Why you cannot help").fill("Not my field, sorry")
    await row.get_by_role("button", name="Hand back").click()

    await expect(page.locator("main")).to_contain_text("The request went back to the other")
    await expect(row.locator(".outcome")).to_contain_text("handed back")
    got = await site.pool.fetchrow(
        "SELECT state, expert_id FROM requests WHERE id = $1", body["id"]
    )
    assert (got["state"], got["expert_id"]) == ("waiting", None)
    reason = await site.pool.fetchval("SELECT reason FROM offers WHERE id = $1", won.offer_id)
    assert reason == "Not my field, sorry"
    assert bruno
