"""A human-readable account of one request, built from what the database recorded."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def transcript(pool: asyncpg.Pool, request_id: int) -> list[str]:
    lines: list[tuple[datetime, str]] = []
    for e in await pool.fetch(
        "SELECT at, from_state, to_state, detail FROM request_events"
        " WHERE request_id = $1 ORDER BY id",
        request_id,
    ):
        frm = e["from_state"] or "new"
        lines.append((e["at"], f"request   {frm} -> {e['to_state']}  ({e['detail']})"))
    for i in await pool.fetch(
        "SELECT * FROM inbound_calls WHERE request_id = $1 ORDER BY id", request_id
    ):
        caller = i["caller"] or "a withheld number"
        lines.append(
            (i["started_at"], f"call in   {i['channel_id']} from {caller} to {i['dialled']}")
        )
        if i["ended_at"]:
            lines.append((i["ended_at"], f"call end  {i['channel_id']} outcome={i['outcome']}"))
    for a in await pool.fetch(
        "SELECT * FROM call_attempts WHERE request_id = $1 ORDER BY id", request_id
    ):
        who = f"{a['leg']:<6} {a['channel_id']}"
        if a["purpose"] == "inbound":  # the caller's own channel: nothing was dialled
            lines.append((a["started_at"], f"held      {who} (the caller on the line)"))
        else:
            lines.append(
                (a["started_at"], f"dial      {who} -> {a['dial_string']} ({a['purpose']})")
            )
        if a["answered_at"]:
            lines.append((a["answered_at"], f"answer    {who}"))
        if a["ended_at"]:
            keys = f" keys={a['dtmf']!r}" if a["dtmf"] else ""
            choice = f" choice={a['choice']}" if a["choice"] else ""
            cause = f" cause={a['hangup_cause']} {a['hangup_text']}".rstrip()
            lines.append(
                (a["ended_at"], f"hangup    {who} outcome={a['outcome']}{keys}{choice}{cause}")
            )
    c = await pool.fetchrow("SELECT * FROM consultations WHERE request_id = $1", request_id)
    if c is not None:
        lines.append(
            (
                c["bridge_start"],
                f"bridge    {c['bridge_id']} [{c['expert_channel_id']} + {c['client_channel_id']}]",
            )
        )
        if c["bridge_end"]:
            lines.append(
                (
                    c["bridge_end"],
                    f"unbridge  ended by {c['ended_by']}, billed {c['billed_seconds']} s"
                    f" at {c['rate_per_minute']} EUR/min",
                )
            )
    lines.sort(key=lambda item: item[0])
    return [f"{at.strftime('%H:%M:%S.%f')[:-3]}  {text}" for at, text in lines]
