"""PIN checks with lockouts, for the phone menu. The PIN itself is never stored or logged.

Wrong PINs are counted per expert and per calling number; when either count reaches the
limit, the menu is locked for it for a while and the lockout is recorded. While locked the
PIN is not even checked, and the caller is told exactly what a wrong PIN is told.
"""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime, timedelta

import asyncpg

from ivr_engine.domain.pin import hash_pin, verify_pin
from ivr_engine.errors import NotFound


class PinOutcome(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # locked before, or by this very attempt


async def set_pin(pool: asyncpg.Pool, expert_id: int, pin: str) -> None:
    encoded = await asyncio.to_thread(hash_pin, pin)  # scrypt is slow on purpose
    if (
        await pool.fetchval(
            "UPDATE experts SET pin_hash = $2 WHERE id = $1 RETURNING id", expert_id, encoded
        )
        is None
    ):
        raise NotFound(f"expert {expert_id} does not exist")


async def try_pin(
    pool: asyncpg.Pool,
    expert_id: int | None,
    caller: str,
    pin: str,
    *,
    now: datetime,
    max_failures: int,
    lockout: timedelta,
) -> PinOutcome:
    keys = [f"caller:{caller}"] if caller else []
    if expert_id is not None:
        keys.append(f"expert:{expert_id}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO pin_failures (key) VALUES ($1) ON CONFLICT DO NOTHING",
            [(k,) for k in keys],
        )
        rows = await conn.fetch(
            "SELECT key, failures, locked_until FROM pin_failures WHERE key = ANY($1::text[])"
            " ORDER BY key FOR UPDATE",
            keys,
        )
        if any(r["locked_until"] is not None and r["locked_until"] > now for r in rows):
            return PinOutcome.LOCKED
        encoded = None
        if expert_id is not None:
            encoded = await conn.fetchval("SELECT pin_hash FROM experts WHERE id = $1", expert_id)
        if encoded and await asyncio.to_thread(verify_pin, pin, encoded):
            await conn.execute(
                "UPDATE pin_failures SET failures = 0, locked_until = NULL, updated_at = $2"
                " WHERE key = ANY($1::text[])",
                keys,
                now,
            )
            return PinOutcome.OK
        locked = await conn.fetch(
            "UPDATE pin_failures SET failures = failures + 1, updated_at = $2,"
            " locked_until = CASE WHEN failures + 1 >= $3 THEN $4::timestamptz ELSE NULL END"
            " WHERE key = ANY($1::text[]) RETURNING key, locked_until",
            keys,
            now,
            max_failures,
            now + lockout,
        )
        if any(r["locked_until"] is not None for r in locked):
            await conn.execute(
                "UPDATE pin_failures SET failures = 0 WHERE key = ANY($1::text[])"
                " AND locked_until IS NOT NULL",
                keys,
            )
            await conn.execute(
                "INSERT INTO pin_lockouts (expert_id, caller, locked_at, locked_until)"
                " VALUES ($1, $2, $3, $4)",
                expert_id,
                caller,
                now,
                now + lockout,
            )
            return PinOutcome.LOCKED
        return PinOutcome.WRONG
