"""One live waiting-list entry per client and expert, kept by PostgreSQL itself (migration
0010): concurrent joins of the same client get one request and 409 Conflicts, and the
migration ends the duplicates an earlier race left behind."""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from ivr_engine.engine import Engine
from ivr_engine.errors import Conflict
from ivr_engine.store import migrate, people, waiting
from ivr_engine.store.db import default_migrations_dir

pytestmark = pytest.mark.integration


async def _pair(pool: asyncpg.Pool) -> tuple[int, int]:
    expert = await people.create_expert(pool, alias="A", phone="+390600000101", rate=Decimal(1))
    client = await people.client_by_phone(pool, "+393330000201")
    return expert, client


async def test_concurrent_joins_of_one_client_make_one_request(pool: asyncpg.Pool) -> None:
    expert, client = await _pair(pool)
    # Eight connections open first (a new one takes longer to open than a join takes), so
    # the joins run side by side: their SELECTs all find nothing before any INSERT
    # commits, and the unique index decides.
    await asyncio.gather(*(pool.execute("SELECT pg_sleep(0.1)") for _ in range(8)))
    outcomes = await asyncio.gather(
        *(waiting.create(pool, expert, client) for _ in range(8)), return_exceptions=True
    )
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(made), len(refused)) == (1, 7), outcomes
    assert await pool.fetchval("SELECT count(*) FROM requests") == 1
    # Once that request has ended, the client may join again.
    await waiting.leave(pool, made[0].id)
    assert (await waiting.create(pool, expert, client)).id != made[0].id


async def test_concurrent_api_joins_answer_201_once_then_409(
    api: tuple[Engine, aiohttp.ClientSession, str],
) -> None:
    engine, http, base = api
    expert, _ = await _pair(engine.pool)
    await asyncio.gather(*(engine.pool.execute("SELECT pg_sleep(0.1)") for _ in range(6)))
    url = f"{base}/api/v1/experts/{expert}/requests"

    async def join() -> int:
        async with http.post(url, json={"client_phone": "+393330000201"}) as resp:
            assert "error" in (await resp.json()) or resp.status == 201
            return resp.status

    statuses = sorted(await asyncio.gather(*(join() for _ in range(6))))
    assert statuses == [201, 409, 409, 409, 409, 409]


async def test_the_migration_ends_duplicates_left_by_the_race(dsn: str, tmp_path: Path) -> None:
    before = tmp_path / "migrations"
    before.mkdir()
    for f in default_migrations_dir().iterdir():
        if f.name.endswith(".sql") and f.name < "0010":
            shutil.copyfile(str(f), before / f.name)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        await migrate(pool, before)
        expert, client = await _pair(pool)
        ids = [
            await pool.fetchval(
                "INSERT INTO requests (expert_id, client_id, state) VALUES ($1, $2, $3)"
                " RETURNING id",
                expert,
                client,
                state,
            )
            for state in ("waiting", "ringing_expert", "waiting", "lost")
        ]
        assert "0010_one_live_request.sql" in await migrate(pool)
        states = {
            r["id"]: (r["state"], r["end_reason"])
            for r in await pool.fetch("SELECT id, state, end_reason FROM requests")
        }
        assert states == {
            ids[0]: ("lost", "duplicate"),
            ids[1]: ("ringing_expert", ""),  # the one being called is kept
            ids[2]: ("lost", "duplicate"),
            ids[3]: ("lost", ""),
        }
        events = await pool.fetch(
            "SELECT request_id, from_state, detail FROM request_events ORDER BY request_id"
        )
        assert [tuple(e) for e in events] == [
            (ids[0], "waiting", "duplicate"),
            (ids[2], "waiting", "duplicate"),
        ]
        with pytest.raises(asyncpg.UniqueViolationError):
            await pool.execute(
                "INSERT INTO requests (expert_id, client_id) VALUES ($1, $2)", expert, client
            )
    finally:
        await pool.close()
