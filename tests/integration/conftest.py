"""The engine's HTTP API on a real PostgreSQL, with Asterisk away (nothing is dialled)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ivr_engine.engine import Engine
from tests.conftest import asterisk_away

TOKEN = "t0ken"


@pytest.fixture
async def api(dsn: str) -> AsyncIterator[tuple[Engine, aiohttp.ClientSession, str]]:
    settings = asterisk_away(dsn, TOKEN)
    engine = Engine(settings)
    await engine.start()
    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        yield engine, session, f"http://127.0.0.1:{engine.http_port}"
    finally:
        await session.close()
        await engine.close()


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json()
