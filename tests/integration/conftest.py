"""The engine's HTTP API on a real PostgreSQL, with Asterisk away (nothing is dialled)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ivr_engine.config import Settings
from ivr_engine.engine import Engine

TOKEN = "t0ken"


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def api(dsn: str) -> AsyncIterator[tuple[Engine, aiohttp.ClientSession, str]]:
    settings = Settings(
        database_url=dsn,
        ari_url=f"http://127.0.0.1:{_dead_port()}/ari",  # Asterisk is away
        ari_password="x",
        ami_port=_dead_port(),
        ami_secret="x",
        api_token=TOKEN,
        link_secret="link-secret",
        http_port=0,
    )
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
