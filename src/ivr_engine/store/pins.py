"""PIN checks with lockouts, for the phone menu. The PIN itself is never stored or logged.

Wrong PINs are counted per expert and per calling number (which a caller can forge, so the
expert's count is the one that matters); when either reaches the limit, the menu is locked
for it, each lockout longer than the last, and the counts are forgotten after a quiet
period (the rules: domain/pin.py, ``PinThrottle``). While locked the PIN is not even
checked, and the caller is told exactly what a wrong PIN is told. When an expert's menu
locks, the expert is emailed: someone may be guessing, and setting a new PIN (panel, API)
unlocks it.
"""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime, timedelta

import asyncpg

from ivr_engine.domain.pin import PinThrottle, Strikes, hash_pin, verify_pin
from ivr_engine.errors import NotFound
from ivr_engine.store import outbox


class PinOutcome(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # locked before, or by this very attempt


async def set_pin(pool: asyncpg.Pool, expert_id: int, pin: str) -> None:
    """A new PIN (6 to 8 digits); it also lifts a lockout of the expert's phone menu."""
    encoded = await asyncio.to_thread(hash_pin, pin)  # scrypt is slow on purpose
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            "UPDATE experts SET pin_hash = $2, pin_digits = $3 WHERE id = $1 RETURNING id",
            expert_id,
            encoded,
            len(pin),
        )
        if done is None:
            raise NotFound(f"expert {expert_id} does not exist")
        await conn.execute("DELETE FROM pin_failures WHERE key = $1", f"expert:{expert_id}")


async def try_pin(
    pool: asyncpg.Pool,
    expert_id: int | None,
    caller: str,
    pin: str,
    *,
    now: datetime,
    max_failures: int,
    lockout: timedelta,
    max_lockout: timedelta = timedelta(hours=24),
    quiet: timedelta = timedelta(hours=24),
) -> PinOutcome:
    throttle = PinThrottle(max_failures, lockout, max_lockout, quiet)
    keys = [f"caller:{caller}"] if caller else []
    if expert_id is not None:
        keys.append(f"expert:{expert_id}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO pin_failures (key) VALUES ($1) ON CONFLICT DO NOTHING",
            [(k,) for k in keys],
        )
        rows = await conn.fetch(
            "SELECT key, failures, lockouts, locked_until, last_failure_at FROM pin_failures"
            " WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE",
            keys,
        )
        strikes = {
            r["key"]: Strikes(r["failures"], r["lockouts"], r["locked_until"], r["last_failure_at"])
            for r in rows
        }
        if any(throttle.locked(s, now) for s in strikes.values()):
            return PinOutcome.LOCKED
        expert = None
        if expert_id is not None:
            expert = await conn.fetchrow(
                "SELECT pin_hash, alias, email, language FROM experts WHERE id = $1", expert_id
            )
        if (
            expert
            and expert["pin_hash"]
            and await asyncio.to_thread(verify_pin, pin, expert["pin_hash"])
        ):
            await conn.execute(
                "UPDATE pin_failures SET failures = 0, lockouts = 0, locked_until = NULL,"
                " updated_at = $2 WHERE key = ANY($1::text[])",
                keys,
                now,
            )
            # Now that the length is known: a PIN of fewer than 6 digits is shown as weak.
            await conn.execute(
                "UPDATE experts SET pin_digits = $2 WHERE id = $1", expert_id, len(pin)
            )
            return PinOutcome.OK
        locked: dict[str, datetime] = {}
        for key, before in strikes.items():
            after = throttle.failed(before, now)
            await conn.execute(
                "UPDATE pin_failures SET failures = $2, lockouts = $3, locked_until = $4,"
                " last_failure_at = $5, updated_at = $5 WHERE key = $1",
                key,
                after.failures,
                after.lockouts,
                after.locked_until,
                now,
            )
            if after.locked_until is not None and throttle.locked(after, now):
                locked[key] = after.locked_until
        if not locked:
            return PinOutcome.WRONG
        until = max(locked.values())
        await conn.execute(
            "INSERT INTO pin_lockouts (expert_id, caller, locked_at, locked_until)"
            " VALUES ($1, $2, $3, $4)",
            expert_id,
            caller,
            now,
            until,
        )
        mine = f"expert:{expert_id}"
        if mine in locked and expert is not None and expert["email"]:
            await outbox.queue(
                conn,
                "expert_pin_locked",
                to=expert["email"],
                language=expert["language"],
                payload={
                    "expert_alias": expert["alias"],
                    "locked_until": locked[mine].isoformat(),
                    "wrong_pins": max_failures,
                },
            )
        return PinOutcome.LOCKED
