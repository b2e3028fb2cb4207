"""Panel accounts, their sessions and sign-in throttling.

Passwords are scrypt hashes (domain/pin.py). A session cookie carries a random token and
only its SHA-256 is stored. Failed sign-ins are counted per email and per client address
within a window; either count reaching the limit locks sign-in for it, whether or not
the email exists, so the lock reveals nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from ivr_engine.domain.pin import hash_secret, verify_secret
from ivr_engine.errors import Conflict, NotFound

MIN_PASSWORD = 10
# Checked against when the email is unknown, so both answers take the same time.
_DUMMY_HASH = hash_secret("not a password of anyone")


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    role: str  # 'expert' or 'admin'
    expert_id: int | None
    language: str | None  # an expert's language; None for staff (their browser decides)
    csrf: str = ""


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    pool: asyncpg.Pool, *, email: str, password: str, role: str, expert_id: int | None = None
) -> int:
    check_password(password)
    encoded = await asyncio.to_thread(hash_secret, password)
    try:
        return int(
            await pool.fetchval(
                "INSERT INTO accounts (email, password_hash, role, expert_id)"
                " VALUES ($1, $2, $3, $4) RETURNING id",
                email.strip().lower(),
                encoded,
                role,
                expert_id,
            )
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"an account with email {email} already exists") from err


async def set_expert_login(
    conn: asyncpg.Connection | asyncpg.Pool, expert_id: int, email: str, password: str | None
) -> None:
    """Create or update the sign-in of an expert (email follows the expert's email)."""
    encoded = await asyncio.to_thread(hash_secret, password) if password else None
    email = email.strip().lower()
    try:
        row = await conn.fetchrow(
            "UPDATE accounts SET email = $2, password_hash = coalesce($3, password_hash)"
            " WHERE expert_id = $1 RETURNING id",
            expert_id,
            email,
            encoded,
        )
        if row is not None and encoded is not None:  # a new password signs out old sessions
            await conn.execute("DELETE FROM panel_sessions WHERE account_id = $1", row["id"])
        if row is None and encoded is not None:
            await conn.execute(
                "INSERT INTO accounts (email, password_hash, role, expert_id)"
                " VALUES ($1, $2, 'expert', $3)",
                email,
                encoded,
                expert_id,
            )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"an account with email {email} already exists") from err


async def has_login(pool: asyncpg.Pool, expert_id: int) -> bool:
    return bool(await pool.fetchval("SELECT 1 FROM accounts WHERE expert_id = $1", expert_id))


async def verify(pool: asyncpg.Pool, email: str, password: str) -> Account | None:
    row = await pool.fetchrow(
        "SELECT a.*, e.language FROM accounts a"
        " LEFT JOIN experts e ON e.id = a.expert_id WHERE a.email = $1",
        email.strip().lower(),
    )
    encoded = row["password_hash"] if row is not None else _DUMMY_HASH
    ok = await asyncio.to_thread(verify_secret, password, encoded)
    if row is None or not ok:
        return None
    return Account(row["id"], row["email"], row["role"], row["expert_id"], row["language"])


async def change_password(pool: asyncpg.Pool, account_id: int, password: str) -> None:
    """A new password also signs out every open session of the account."""
    check_password(password)
    encoded = await asyncio.to_thread(hash_secret, password)
    async with pool.acquire() as conn, conn.transaction():
        updated = await conn.fetchval(
            "UPDATE accounts SET password_hash = $2 WHERE id = $1 RETURNING id", account_id, encoded
        )
        if updated is None:
            raise NotFound(f"account {account_id} does not exist")
        await conn.execute("DELETE FROM panel_sessions WHERE account_id = $1", account_id)


# -- sessions -----------------------------------------------------------------------------
async def open_session(pool: asyncpg.Pool, account_id: int, ttl: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO panel_sessions (token_hash, account_id, csrf, expires_at)"
        " VALUES ($1, $2, $3, now() + $4::interval)",
        _token_hash(token),
        account_id,
        secrets.token_urlsafe(24),
        ttl,
    )
    return token


async def session(pool: asyncpg.Pool, token: str) -> Account | None:
    row = await pool.fetchrow(
        "SELECT a.id, a.email, a.role, a.expert_id, s.csrf,"
        " e.language"
        " FROM panel_sessions s JOIN accounts a ON a.id = s.account_id"
        " LEFT JOIN experts e ON e.id = a.expert_id"
        " WHERE s.token_hash = $1 AND s.expires_at > now()",
        _token_hash(token),
    )
    if row is None:
        return None
    return Account(
        row["id"], row["email"], row["role"], row["expert_id"], row["language"], row["csrf"]
    )


async def close_session(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute(
        "DELETE FROM panel_sessions WHERE token_hash = $1 OR expires_at < now()",
        _token_hash(token),
    )


# -- throttling ---------------------------------------------------------------------------
async def locked_until(pool: asyncpg.Pool, keys: list[str], now: datetime) -> datetime | None:
    value = await pool.fetchval(
        "SELECT max(locked_until) FROM login_failures WHERE key = ANY($1) AND locked_until > $2",
        keys,
        now,
    )
    return value  # type: ignore[no-any-return]


async def failed(
    pool: asyncpg.Pool, keys: list[str], now: datetime, *, limit: int, window: timedelta
) -> None:
    """Count one failure on each key; lock a key for ``window`` when it reaches ``limit``
    failures within ``window``."""
    async with pool.acquire() as conn, conn.transaction():
        for key in keys:
            await conn.execute(
                "INSERT INTO login_failures AS f (key, failures, window_start) VALUES ($1, 1, $2)"
                " ON CONFLICT (key) DO UPDATE SET"
                "  failures = CASE WHEN f.window_start < $2::timestamptz - $3::interval THEN 1"
                "                  ELSE f.failures + 1 END,"
                "  window_start = CASE WHEN f.window_start < $2::timestamptz - $3::interval THEN $2"
                "                      ELSE f.window_start END",
                key,
                now,
                window,
            )
            await conn.execute(
                "UPDATE login_failures SET locked_until = $2::timestamptz + $3::interval,"
                " failures = 0, window_start = $2 WHERE key = $1 AND failures >= $4",
                key,
                now,
                window,
                limit,
            )


async def succeeded(pool: asyncpg.Pool, keys: list[str]) -> None:
    await pool.execute("DELETE FROM login_failures WHERE key = ANY($1)", keys)
