"""The operator's commands from a shell: requests list, outbox list|retry, consultations
export --csv, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from decimal import Decimal
from typing import Any

import pytest

from ivr_engine.store import people, waiting

pytestmark = pytest.mark.integration


async def _cli(dsn: str, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "IVR_DATABASE_URL": dsn,
        "IVR_ARI_PASSWORD": "x",
        "IVR_AMI_SECRET": "x",
        "IVR_API_TOKEN": "x",
        "IVR_LINK_SECRET": "x",
        "IVR_LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr_engine", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def _world(pool: Any) -> dict[str, int]:
    anna = await people.create_expert(pool, alias="Anna", phone="+390601", rate=Decimal("2.50"))
    bruno = await people.create_expert(pool, alias="Bruno", phone="+390602", rate=Decimal(1))
    marco = await people.client_by_phone(pool, "+393331112223", alias="Marco")
    luca = await people.client_by_phone(pool, "+393334445556", alias="Luca")
    first = await waiting.create(pool, anna, marco)
    second = await waiting.create(pool, bruno, luca)
    done = await waiting.create(pool, anna, luca)
    await waiting.leave(pool, done.id)  # lost
    return {"anna": anna, "first": first.id, "second": second.id, "lost": done.id}


async def test_requests_list_filters_by_state_and_expert(dsn: str, pool: Any) -> None:
    w = await _world(pool)
    code, out, err = await _cli(dsn, "requests", "list", "--state", "waiting")
    assert code == 0, err
    ids = [int(line.split()[0]) for line in out.splitlines()[1:-1]]
    assert ids == [w["second"], w["first"]]  # newest first
    assert out.splitlines()[-1] == "2 request(s)"
    assert "Marco" in out and "3331112223" not in out  # aliases, never phone numbers
    code, out, _ = await _cli(dsn, "requests", "list", "--expert", str(w["anna"]))
    assert [int(line.split()[0]) for line in out.splitlines()[1:-1]] == [w["lost"], w["first"]]
    assert "client_left" in out
    code, _, err = await _cli(dsn, "requests", "list", "--state", "sleeping")
    assert code == 2 and "unknown state 'sleeping'" in err


async def test_outbox_list_and_retry(dsn: str, pool: Any) -> None:
    failed = await pool.fetchval(
        "INSERT INTO outbox_emails (kind, to_address, attempts, failed_at, last_error)"
        " VALUES ('consultation_earnings', 'anna@example.org', 5, now(), 'SMTP refused')"
        " RETURNING id"
    )
    await pool.execute("INSERT INTO outbox_emails (kind, to_address) VALUES ('x', 'b@x.org')")
    code, out, err = await _cli(dsn, "outbox", "list", "--which", "failed")
    assert code == 0, err
    expected = [str(failed), "consultation_earnings", "anna@example.org", "5"]
    assert out.splitlines()[1].split()[:4] == expected
    assert "SMTP refused" in out and out.splitlines()[-1] == "1 email(s)"
    code, _, err = await _cli(dsn, "outbox", "retry")
    assert code == 2 and "--all-failed" in err
    code, out, err = await _cli(dsn, "outbox", "retry", "--all-failed")
    assert code == 0 and out.strip() == f"1 email(s) queued again: {failed}", err
    row = await pool.fetchrow("SELECT * FROM outbox_emails WHERE id = $1", failed)
    assert row["failed_at"] is None and row["attempts"] == 0 and row["last_error"] == ""
    code, out, _ = await _cli(dsn, "outbox", "retry", str(failed))
    assert out.strip() == f"no failed email to retry among [{failed}]"


async def test_consultations_export_csv_for_a_period(dsn: str, pool: Any) -> None:
    w = await _world(pool)
    insert = (
        "INSERT INTO consultations (request_id, expert_id, client_id, bridge_id,"
        " expert_channel_id, client_channel_id, rate_per_minute, bridge_start, bridge_end,"
        " billed_seconds, charged_seconds, client_price, transfer_cost, commission, earnings)"
        " SELECT id, expert_id, client_id, $2, $2 || 'e', $2 || 'c', 2.50, $3::text::timestamptz,"
        " $3::text::timestamptz + interval '125 s', 125, 125, 5.21, 0.42, 0, 4.79"
        " FROM requests WHERE id = $1"
    )
    await pool.execute(insert, w["first"], "b1", "2026-11-10T09:00:00+00:00")
    # 23:30 UTC on the 30th is already December in Rome
    await pool.execute(insert, w["second"], "b2", "2026-11-30T23:30:00+00:00")
    await pool.execute(insert, w["lost"], "b3", "2026-10-31T12:00:00+00:00")
    period = ["--from", "2026-11-01", "--to", "2026-11-30"]
    code, out, err = await _cli(dsn, "consultations", "export", "--csv", *period)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["request_id"] for r in rows] == [str(w["first"]), str(w["second"])]
    assert rows[0]["client_price"] == "5.21" and rows[0]["earnings"] == "4.79"
    assert rows[0]["billed_seconds"] == "125" and rows[0]["expert_alias"] == "Anna"
    code, out, _ = await _cli(
        dsn, "consultations", "export", "--csv", *period, "--tz", "Europe/Rome"
    )
    assert [r["request_id"] for r in csv.DictReader(io.StringIO(out))] == [str(w["first"])]
    code, _, err = await _cli(
        dsn, "consultations", "export", "--csv", "--from", "2026-12-01", "--to", "2026-11-01"
    )
    assert code == 2 and "must come after" in err
