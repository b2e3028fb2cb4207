"""What an expert sets about their own consultations: the number calls reach them on and the
rate per minute. Checks are the caller's (domain/money.py); this module only reads and writes.
The PIN is in store/pins.py, the availability in store/planning.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from ivr_engine.errors import NotFound


@dataclass(frozen=True)
class Profile:
    phone: str
    rate: Decimal
    category: str
    language: str
    email: str
    has_pin: bool
    pin_digits: int | None = None  # None: not known (set before lengths were kept)
    pin_locked_until: datetime | None = None  # the phone menu's lockout, if any


async def load(pool: asyncpg.Pool, expert_id: int) -> Profile:
    row = await pool.fetchrow(
        "SELECT phone, rate_per_minute, category, language, email, pin_digits,"
        " pin_hash IS NOT NULL AS has_pin, (SELECT locked_until FROM pin_failures"
        "  WHERE key = 'expert:' || e.id AND locked_until > now()) AS pin_locked_until"
        " FROM experts e WHERE id = $1",
        expert_id,
    )
    if row is None:
        raise NotFound(f"expert {expert_id} does not exist")
    return Profile(
        phone=row["phone"],
        rate=row["rate_per_minute"],
        category=row["category"],
        language=row["language"],
        email=row["email"],
        has_pin=row["has_pin"],
        pin_digits=row["pin_digits"],
        pin_locked_until=row["pin_locked_until"],
    )


async def set_phone(pool: asyncpg.Pool, expert_id: int, phone: str) -> None:
    """Consultations already started keep the line type they froze in their tariff."""
    await _update(
        pool, "UPDATE experts SET phone = $2 WHERE id = $1 RETURNING id", expert_id, phone
    )


async def set_rate(pool: asyncpg.Pool, expert_id: int, rate: Decimal) -> None:
    await _update(
        pool, "UPDATE experts SET rate_per_minute = $2 WHERE id = $1 RETURNING id", expert_id, rate
    )


async def _update(pool: asyncpg.Pool, sql: str, expert_id: int, value: object) -> None:
    if await pool.fetchval(sql, expert_id, value) is None:
        raise NotFound(f"expert {expert_id} does not exist")
