"""The operator's commands: what is waiting, what the outbox holds, what was billed.

    ivr-engine requests list [--state S]... [--expert ID] [--limit N]
    ivr-engine outbox list [--which pending|failed|sent|all] [--limit N]
    ivr-engine outbox retry (ID... | --all-failed)
    ivr-engine consultations export --csv --from DAY --to DAY [--tz ZONE] [--out FILE]

Each opens its own small pool on ``IVR_DATABASE_URL``, never migrates (a command must not
change the schema of a database an engine is serving), and prints plain text or CSV. No
client phone number is printed: clients appear by id and alias.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from ivr_engine.domain.requests import RequestState
from ivr_engine.errors import ConfigError
from ivr_engine.store import outbox, reports
from ivr_engine.store.db import connect_pool

EXPORT_COLUMNS: tuple[str, ...] = (
    "id",
    "request_id",
    "expert_id",
    "expert_alias",
    "client_id",
    "client_alias",
    "start",
    "end",
    "ended_by",
    "billed_seconds",
    "charged_seconds",
    "rate_per_minute",
    "category",
    "line_type",
    "transfer_per_minute",
    "transfer_rule",
    "commission_percent",
    "client_price",
    "transfer_cost",
    "commission",
    "earnings",
    "note",
)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned for a terminal; ``-`` for an empty value."""
    cells = [list(header)] + [["-" if v in (None, "") else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


async def list_requests(
    pool: asyncpg.Pool, states: list[str] | None, expert_id: int | None, limit: int
) -> str:
    for state in states or []:
        if state not in {s.value for s in RequestState}:
            known = ", ".join(s.value for s in RequestState)
            raise ConfigError(f"unknown state {state!r} (one of: {known})")
    found = await reports.requests(pool, states=states, expert_id=expert_id, limit=limit)
    header = ("id", "state", "expert", "client", "attempts", "next attempt", "end", "created")
    rows = [
        (
            r.id,
            r.state,
            f"{r.expert_id or '-'} {r.expert_alias}",
            f"{r.client_id} {r.client_alias}",
            r.attempts,
            _when(r.next_attempt_at) if r.state == "waiting" else "",
            r.end_reason,
            _when(r.created_at),
        )
        for r in found
    ]
    return table(header, rows) + f"\n{len(rows)} request(s)"


async def list_outbox(pool: asyncpg.Pool, which: str, limit: int) -> str:
    found = await outbox.rows(pool, which=which, limit=limit)
    header = ("id", "kind", "to", "attempts", "created", "next try", "sent", "failed", "error")
    rows = [
        (
            r["id"],
            r["kind"],
            r["to_address"],
            r["attempts"],
            _when(r["created_at"]),
            "" if r["sent_at"] or r["failed_at"] else _when(r["next_try_at"]),
            _when(r["sent_at"]),
            _when(r["failed_at"]),
            r["last_error"][:60],
        )
        for r in found
    ]
    return table(header, rows) + f"\n{len(rows)} email(s)"


async def retry_outbox(pool: asyncpg.Pool, ids: list[int] | None) -> str:
    done = await outbox.retry(pool, ids)
    if not done:
        return "no failed email to retry" + (f" among {ids}" if ids else "")
    return f"{len(done)} email(s) queued again: {', '.join(map(str, done))}"


def period(start: str, end: str, zone: str) -> tuple[datetime, datetime]:
    """``--from``/``--to`` as aware datetimes: a day is taken whole in ``zone`` (``--to``
    included); a time of day without an offset is read in ``zone`` too."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(f"unknown timezone {zone!r}") from err

    def read(raw: str, *, is_end: bool) -> datetime:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            try:
                moment = datetime.fromisoformat(raw)
            except ValueError as err:
                raise ConfigError(f"{raw!r} is neither YYYY-MM-DD nor an ISO time") from err
            return moment if moment.tzinfo else moment.replace(tzinfo=tz)
        return datetime.combine(day + timedelta(days=1) if is_end else day, time(), tz)

    first, last = read(start, is_end=False), read(end, is_end=True)
    if last <= first:
        raise ConfigError(f"--to ({end}) must come after --from ({start})")
    return first, last


async def export_consultations(pool: asyncpg.Pool, start: datetime, end: datetime) -> str:
    """One CSV row per consultation begun in [start, end): its billing detail."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in await reports.consultations_between(pool, start, end):
        writer.writerow({key: "" if item[key] is None else item[key] for key in EXPORT_COLUMNS})
    return out.getvalue()


async def with_pool(dsn: str) -> asyncpg.Pool:
    return await connect_pool(dsn, attempts=2)
