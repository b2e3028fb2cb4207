"""Browser fixtures: Debian's chromium, headless, driven by Playwright; an engine on the
sandbox serving the panel; accounts to sign in with.

Playwright never downloads a browser here: it is pointed at /usr/bin/chromium (installed by
scripts/install-system-deps.sh). Screenshots go to build/test-output/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from ivr_engine.store import accounts
from tests.e2e.conftest import Harness

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[3] / "build" / "test-output" / "screenshots"
PASSWORD = "correct horse battery"
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


@dataclass
class Site:
    """The panel of one engine on the sandbox, and ways to sign in to it."""

    harness: Harness
    browser: Browser
    contexts: list[BrowserContext]

    @property
    def base(self) -> str:
        return self.harness.base

    @property
    def pool(self) -> Any:
        return self.harness.pool

    async def expert(
        self, phone: str, email: str, *, alias: str = "Anna", rate: str = "1.50", **kw: Any
    ) -> int:
        status, body = await self.harness.api(
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

    async def admin(self, email: str = "staff@example.org") -> str:
        await accounts.create(self.pool, email=email, password=PASSWORD, role="admin")
        return email

    async def page(self, lang: str = "en") -> Page:
        context = await self.browser.new_context(locale="en-GB" if lang == "en" else "it-IT")
        self.contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(10_000)
        return page

    async def sign_in(self, email: str, lang: str = "en") -> Page:
        page = await self.page(lang)
        await page.goto(self.base + "/login")
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(lambda url: "/login" not in url)
        return page


@pytest.fixture
async def site(harness: Callable[..., Awaitable[Harness]], browser: Browser) -> AsyncIterator[Site]:
    h = await harness()
    s = Site(h, browser, [])
    try:
        yield s
    finally:
        for context in s.contexts:
            await context.close()


async def shot(page: Page, name: str) -> Path:
    """A full-page screenshot under build/test-output/screenshots/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
