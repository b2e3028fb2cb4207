"""Signing in and out, the session cookie, CSRF, throttling and the language switch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.async_api import expect

from tests.browser.conftest import PASSWORD, Site, shot

pytestmark = pytest.mark.browser


async def _try(site: Site, page: object, email: str, password: str) -> int:
    from playwright.async_api import Page

    assert isinstance(page, Page)
    await page.goto(site.base + "/login")
    await page.locator("#f-email").fill(email)
    await page.locator("#f-password").fill(password)
    async with page.expect_response(lambda r: r.url.endswith("/login")) as info:
        await page.get_by_role("button", name="Sign in").click()
    return (await info.value).status


async def test_anonymous_reader_is_sent_to_sign_in_and_back(site: Site) -> None:
    await site.expert("+390600000401", "anna@example.org")
    page = await site.page()
    await page.goto(site.base + "/panel/refuse-all")
    assert "/login?next=/panel/refuse-all" in page.url
    await shot(page, "sign-in")
    await page.locator("#f-email").fill("Anna@Example.org")  # case does not matter
    await page.locator("#f-password").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(site.base + "/panel/refuse-all")

    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["ivr_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Lax"
    stored = await site.pool.fetchval("SELECT token_hash FROM panel_sessions")
    assert stored != session["value"]  # only a hash of the token is kept

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("[role=status]")).to_have_text("You are signed out.")
    assert await site.pool.fetchval("SELECT count(*) FROM panel_sessions") == 0
    await page.goto(site.base + "/panel")
    assert "/login" in page.url


async def test_wrong_password_and_unknown_email_get_the_same_answer(site: Site) -> None:
    await site.expert("+390600000402", "anna@example.org")
    page = await site.page()
    assert await _try(site, page, "anna@example.org", "not the password") == 401
    wrong = await page.locator("#login-error").text_content()
    assert await _try(site, page, "nobody@example.org", "not the password") == 401
    unknown = await page.locator("#login-error").text_content()
    assert wrong == unknown == "Wrong email or password."
    # the email typed is kept, the password never comes back
    await expect(page.locator("#f-email")).to_have_value("nobody@example.org")
    await expect(page.locator("#f-password")).to_have_value("")


async def test_sign_in_is_locked_after_repeated_failures(site: Site) -> None:
    await site.expert("+390600000403", "anna@example.org")
    page = await site.page()
    limit = site.engine.settings.login_max_failures
    for _ in range(limit):
        assert await _try(site, page, "anna@example.org", "guess guess guess") == 401
    # now even the right password is refused, and the page says why
    assert await _try(site, page, "anna@example.org", PASSWORD) == 429
    await expect(page.locator("#login-error")).to_contain_text("Too many attempts")
    until = await site.pool.fetchval(
        "SELECT locked_until FROM login_failures WHERE key = 'email:anna@example.org'"
    )
    assert until > datetime.now(UTC)
    # the address is locked too: any email from it gets the same answer
    assert await _try(site, page, "ghost@example.org", "guess guess guess") == 429
    # an unknown email is locked the same way: the lock tells nothing about accounts
    await site.pool.execute("DELETE FROM login_failures WHERE key LIKE 'ip:%'")
    for _ in range(limit):
        await _try(site, page, "ghost@example.org", "guess guess guess")
    assert await site.pool.fetchval(
        "SELECT locked_until IS NOT NULL FROM login_failures WHERE key = 'email:ghost@example.org'"
    )


async def test_posts_without_the_csrf_token_are_refused(site: Site) -> None:
    expert_id = await site.expert("+390600000404", "anna@example.org")
    request_id = await site.request(expert_id, "+393330000411")
    page = await site.sign_in("anna@example.org")
    events_before = await site.pool.fetchval("SELECT count(*) FROM request_events")
    url = f"{site.base}/panel/requests/{request_id}/solicit"

    no_token = await page.request.post(url, form={}, max_redirects=0)
    wrong_token = await page.request.post(url, form={"csrf": "forged"}, max_redirects=0)
    # the right token from another site: the Origin header gives it away
    token = await page.locator("input[name=csrf]").first.input_value()
    other_site = await page.request.post(
        url, form={"csrf": token}, headers={"Origin": "https://evil.example"}, max_redirects=0
    )
    assert (no_token.status, wrong_token.status, other_site.status) == (403, 403, 403)
    assert "expired" in await no_token.text()
    assert await site.pool.fetchval("SELECT count(*) FROM request_events") == events_before

    ok = await page.request.post(url, form={"csrf": token}, max_redirects=0)
    assert ok.status == 303
    assert (
        await site.pool.fetchval(
            "SELECT detail FROM request_events WHERE request_id = $1 ORDER BY id DESC LIMIT 1",
            request_id,
        )
        == "solicited"
    )


async def test_sign_in_form_itself_needs_its_csrf_cookie(site: Site) -> None:
    await site.expert("+390600000405", "anna@example.org")
    page = await site.page()
    response = await page.request.post(
        site.base + "/login",
        form={"email": "anna@example.org", "password": PASSWORD, "csrf": "x"},
        max_redirects=0,
    )
    assert response.status == 403
    assert await site.pool.fetchval("SELECT count(*) FROM panel_sessions") == 0


async def test_next_never_leaves_the_site(site: Site) -> None:
    await site.expert("+390600000406", "anna@example.org")
    page = await site.page()
    await page.goto(site.base + "/login?next=//evil.example/x")
    await page.locator("#f-email").fill("anna@example.org")
    await page.locator("#f-password").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(site.base + "/panel")


async def test_language_switch_and_italian_pages(site: Site) -> None:
    await site.expert("+390600000407", "anna@example.org", language="it")
    page = await site.sign_in("anna@example.org", lang="it")
    # the expert's language is Italian: the panel speaks Italian
    await expect(page.get_by_role("heading", level=1)).to_have_text("Chiamate")
    await expect(page.locator("#waiting-empty")).to_have_text("Nessuno è in attesa.")
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Calls")
    await page.get_by_role("link", name="Italiano").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Chiamate")
    await shot(page, "calls-it")


async def test_an_expert_cannot_call_for_another_experts_client(site: Site) -> None:
    anna = await site.expert("+390600000408", "anna@example.org")
    await site.expert("+390600000409", "bruno@example.org", alias="Bruno")
    request_id = await site.request(anna, "+393330000412")
    page = await site.sign_in("bruno@example.org")
    token = await page.locator("input[name=csrf]").first.input_value()
    response = await page.request.post(
        f"{site.base}/panel/requests/{request_id}/solicit", form={"csrf": token}, max_redirects=0
    )
    assert response.status == 404
    assert not await site.pool.fetchval(
        "SELECT count(*) FROM request_events WHERE detail = 'solicited'"
    )


async def test_pages_say_so_when_postgresql_is_away(site: Site) -> None:
    await site.expert("+390600000410", "anna@example.org")
    page = await site.sign_in("anna@example.org")
    await site.engine.pool.close()  # every query of the pages now fails
    response = await page.goto(site.base + "/panel/availability")
    assert response is not None and response.status == 503
    await expect(page.locator("[role=alert]")).to_contain_text("unavailable for a moment")


async def test_ids_no_database_could_hold_are_simply_not_found(site: Site) -> None:
    await site.expert("+390600000411", "anna@example.org")
    page = await site.sign_in("anna@example.org")
    token = await page.locator("input[name=csrf]").first.input_value()
    for raw in ("99999999999999999999", "%C2%B2"):  # past bigint; a superscript two
        response = await page.request.post(
            f"{site.base}/panel/requests/{raw}/solicit", form={"csrf": token}, max_redirects=0
        )
        assert response.status == 404, raw
    staff = await site.sign_in(await site.admin())
    shown = await staff.goto(site.base + "/admin/experts/99999999999999999999")
    assert shown is not None and shown.status == 404
