"""``ivr-engine account``: the first staff account and password changes, from a shell."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from typing import Any

from ivr_engine.domain.pin import verify_secret
from ivr_engine.store import accounts


async def _cli(dsn: str, *args: str, stdin: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "IVR_DATABASE_URL": dsn,
        "IVR_ARI_PASSWORD": "x",
        "IVR_AMI_SECRET": "x",
        "IVR_API_TOKEN": "x",
        "IVR_LINK_SECRET": "x",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ivr_engine",
        "account",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    return proc.returncode or 0, out.decode()


async def test_add_admin_then_change_the_password(dsn: str, pool: Any) -> None:
    code, out = await _cli(dsn, "add-admin", "Staff@Example.org", stdin="first password!\n")
    assert code == 0, out
    row = await pool.fetchrow("SELECT * FROM accounts")
    assert (row["email"], row["role"], row["expert_id"]) == ("staff@example.org", "admin", None)
    assert verify_secret("first password!", row["password_hash"])

    token = await accounts.open_session(pool, row["id"], timedelta(hours=1))
    code, out = await _cli(dsn, "password", "staff@example.org", stdin="second password\n")
    assert code == 0, out
    assert await accounts.verify(pool, "staff@example.org", "second password") is not None
    assert await accounts.session(pool, token) is None  # signed out everywhere


async def test_refusals_are_clear_and_change_nothing(dsn: str, pool: Any) -> None:
    code, out = await _cli(dsn, "add-admin", "staff@example.org", stdin="short\n")
    assert code == 2 and "at least 10 characters" in out
    code, out = await _cli(dsn, "password", "nobody@example.org", stdin="long enough pw\n")
    assert code == 2 and "no account with email nobody@example.org" in out
    await _cli(dsn, "add-admin", "staff@example.org", stdin="long enough pw\n")
    code, out = await _cli(dsn, "add-admin", "staff@example.org", stdin="another password\n")
    assert code == 2 and "already exists" in out
    assert await pool.fetchval("SELECT count(*) FROM accounts") == 1
