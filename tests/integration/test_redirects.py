"""No open redirect: ``next=`` of the language switch (anonymous) and of the sign-in form is
followed only to a path of this site, whatever the browser would make of the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from ivr_engine.engine import Engine
from ivr_engine.store import accounts
from ivr_engine.web.panel.fields import safe_next
from tests.conftest import asterisk_away

pytestmark = pytest.mark.integration

# What a browser reads as another site, once it drops TAB/CR/LF and reads "\" as "/".
ELSEWHERE = [
    "/\t/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "//evil.example",
    "///evil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "/%09/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    " /\t/evil.example",
    "/\r\n/evil.example",
    "",
    "panel",
]


@pytest.mark.parametrize("target", ELSEWHERE)
def test_targets_off_this_site_are_refused(target: str) -> None:
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/panel", "/panel/clients/7?tab=notes#n", "/admin"])
def test_paths_of_this_site_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.fixture
async def base(dsn: str) -> AsyncIterator[tuple[Engine, str]]:
    settings = asterisk_away(dsn, "t").model_copy(update={"panel_secure_cookie": False})
    engine = Engine(settings)
    await engine.start()
    try:
        yield engine, f"http://127.0.0.1:{engine.http_port}"
    finally:
        await engine.close()


async def test_the_language_switch_and_the_sign_in_go_nowhere_else(
    base: tuple[Engine, str],
) -> None:
    engine, url = base
    await accounts.create(
        engine.pool, email="staff@example.org", password="staff-password", role="admin"
    )
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        for target in [*ELSEWHERE, "/admin/experts"]:
            async with http.get(
                f"{url}/lang/en?next={quote(target, safe='')}", allow_redirects=False
            ) as resp:
                expected = "/admin/experts" if target.startswith("/admin") else "/"
                assert (resp.status, resp.headers["Location"]) == (303, expected), target
        signed_in: list[tuple[str, str]] = [
            ("/%09/evil.example", "/admin"),
            ("/admin/experts", "/admin/experts"),
        ]
        for target, expected in signed_in:
            jar.clear()
            async with http.get(url + "/login") as resp:
                assert resp.status == 200
            csrf = next(c.value for c in jar if c.key == "ivr_login_csrf")
            form = {
                "email": "staff@example.org",
                "password": "staff-password",
                "csrf": csrf,
                "next": target,
            }
            async with http.post(url + "/login", data=form, allow_redirects=False) as resp:
                assert resp.status in (302, 303), await resp.text()
                assert resp.headers["Location"] == expected
