"""Experts and clients as the JSON API creates them (the staff's pages use ``admin``)."""

from __future__ import annotations

from decimal import Decimal

import asyncpg


async def create_expert(
    pool: asyncpg.Pool,
    *,
    alias: str,
    phone: str,
    rate: Decimal,
    email: str = "",
    language: str = "en",
    acceptance_ivr: bool = True,
    taking_calls: bool = True,
    category: str = "general",
) -> int:
    return int(
        await pool.fetchval(
            "INSERT INTO experts (alias, phone, rate_per_minute, email, language,"
            " acceptance_ivr, taking_calls, category) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
            " RETURNING id",
            alias,
            phone,
            rate,
            email,
            language,
            acceptance_ivr,
            taking_calls,
            category,
        )
    )


async def client_by_phone(
    pool: asyncpg.Pool, phone: str, *, alias: str = "", language: str = "en", email: str = ""
) -> int:
    """The client with this phone, created on first contact."""
    return int(
        await pool.fetchval(
            "INSERT INTO clients (alias, phone, language, email) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (phone) DO UPDATE SET"
            " alias = CASE WHEN $1 = '' THEN clients.alias ELSE $1 END,"
            " email = CASE WHEN $4 = '' THEN clients.email ELSE $4 END RETURNING id",
            alias or phone[-4:],
            phone,
            language,
            email,
        )
    )
