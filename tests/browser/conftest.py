"""Browser fixtures: Debian's chromium, headless, driven by Playwright, and an engine
serving the panel on a real PostgreSQL.

``site`` runs the engine with Asterisk away (nothing is dialled, requests stay waiting),
so page tests never touch the shared sandbox; tests/e2e/test_panel_calls.py drives the
panel of an engine on the sandbox Asterisk instead.

Playwright never downloads a browser here: it is pointed at /usr/bin/chromium (installed by
scripts/install-system-deps.sh). Screenshots go to build/test-output/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from ivr_engine.engine import Engine
from ivr_engine.store import accounts
from tests.conftest import asterisk_away

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "test-output" / "screenshots"
PASSWORD = "correct horse battery"
TOKEN = "browser-token"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (Debian chromium)")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Site:
    """The panel of one engine, and ways to sign in to it."""

    def __init__(self, engine: Engine, browser: Browser, token: str) -> None:
        self.engine = engine
        self.browser = browser
        self.base = f"http://127.0.0.1:{engine.http_port}"
        self._token = token
        self._contexts: list[BrowserContext] = []
        self.http = aiohttp.ClientSession()

    @property
    def pool(self) -> Any:
        return self.engine.pool

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The JSON API (bearer token), to set things up and to check what pages did."""
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self.http.request(method, self.base + path, json=body, headers=headers) as r:
            return r.status, await r.json() if r.content_type == "application/json" else None

    async def expert(
        self, phone: str, email: str, *, alias: str = "Anna", rate: str = "1.50", **kw: Any
    ) -> int:
        """An expert with a panel account (password PASSWORD)."""
        status, body = await self.api(
            "POST",
            "/api/v1/experts",
            {"alias": alias, "phone": phone, "rate_per_minute": rate, "email": email, **kw},
        )
        assert status == 201, body
        expert_id = int(body["id"])
        await accounts.create(
            self.pool, email=email, password=PASSWORD, role="expert", expert_id=expert_id
        )
        return expert_id

    async def request(
        self, expert_id: int, client_phone: str, alias: str = "Marco", **kw: Any
    ) -> int:
        status, body = await self.api(
            "POST",
            f"/api/v1/experts/{expert_id}/requests",
            {"client_phone": client_phone, "client_alias": alias, **kw},
        )
        assert status == 201, body
        return int(body["id"])

    async def admin(self, email: str = "staff@example.org") -> str:
        await accounts.create(self.pool, email=email, password=PASSWORD, role="admin")
        return email

    async def page(self, lang: str = "en") -> Page:
        context = await self.browser.new_context(locale="en-GB" if lang == "en" else "it-IT")
        self._contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(10_000)
        return page

    async def sign_in(self, email: str, lang: str = "en") -> Page:
        page = await self.page(lang)
        await page.goto(self.base + "/login")
        await page.locator("#f-email").fill(email)
        await page.locator("#f-password").fill(PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(lambda url: "/login" not in url)
        return page

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()
        await self.http.close()


@pytest.fixture
async def site(dsn: str, browser: Browser) -> AsyncIterator[Site]:
    settings = asterisk_away(dsn, TOKEN)
    engine = Engine(settings)
    await engine.start()
    s = Site(engine, browser, TOKEN)
    try:
        yield s
    finally:
        await s.close()
        await engine.close()


async def shot(page: Page, name: str) -> Path:
    """A full-page screenshot under build/test-output/screenshots/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
