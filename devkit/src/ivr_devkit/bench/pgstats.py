"""What PostgreSQL ran during a bench phase, from pg_stat_statements (``--engine-only``).

The bench's throwaway cluster loads pg_stat_statements with ``track = all`` (pgcluster's
``statement_stats``): the statements the engine sends (top level) and those run inside
functions and triggers (nested, their time already inside the top-level statement that
fired them) are told apart by ``toplevel``. PL/pgSQL functions (the triggers) come from
pg_stat_user_functions. The bench's own queries carry the comment ``/* bench */`` and are
left out of the engine's figures.

Two windows are read: a quiet one before the phase (no call: what the engine's background
work costs per second: the dispatcher's safety-net passes, the lease heartbeat and its
recovery pass, the outbox sender's polling) and the phase itself, divided by completed
consultations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from ivr_devkit.bench import cpu

BENCH_MARK = "/* bench */"
TOP = 25  # statements printed per window (the JSON has them all)
FUNCTION_STATS_DELAY = 11.0  # seconds (see ``read``)


@dataclass(frozen=True)
class Statement:
    query: str
    toplevel: bool
    calls: int
    exec_ms: float
    plan_ms: float
    rows: int


@dataclass(frozen=True)
class Function:
    name: str
    calls: int
    total_ms: float
    self_ms: float


@dataclass(frozen=True)
class Window:
    statements: list[Statement]
    functions: list[Function]


async def enable(pool: asyncpg.Pool) -> None:
    await pool.execute(f"{BENCH_MARK} CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


async def reset(pool: asyncpg.Pool) -> None:
    """Start a window: statement and function counters back to zero."""
    await pool.execute(f"{BENCH_MARK} SELECT pg_stat_statements_reset()")
    await pool.execute(f"{BENCH_MARK} SELECT pg_stat_reset()")


async def read(pool: asyncpg.Pool) -> Window:
    """What ran in this database since the last ``reset`` (the bench's own queries left out).

    pg_stat_statements is current at once; a backend reports its function counters when it
    goes idle, at most once a second, else within 10 s (PostgreSQL 15): the caller waits
    ``FUNCTION_STATS_DELAY`` after the last call before reading a window's functions."""
    rows = await pool.fetch(
        f"{BENCH_MARK} SELECT query, toplevel, calls, total_exec_time, total_plan_time, rows"
        " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database()"
    )
    statements = [
        Statement(
            query=" ".join(r["query"].split()),
            toplevel=r["toplevel"],
            calls=r["calls"],
            exec_ms=r["total_exec_time"],
            plan_ms=r["total_plan_time"],
            rows=r["rows"],
        )
        for r in rows
        if BENCH_MARK not in r["query"]
    ]
    funcs = await pool.fetch(
        f"{BENCH_MARK} SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions"
    )
    functions = [
        Function(f["funcname"], f["calls"], f["total_time"], f["self_time"]) for f in funcs
    ]
    return Window(statements, functions)


def summary(window: Window, per: float, unit: str) -> dict[str, Any]:
    """Calls and milliseconds of each statement divided by ``per`` (consultations, seconds)."""
    per = max(per, 1e-9)
    top = [s for s in window.statements if s.toplevel]
    nested = [s for s in window.statements if not s.toplevel]

    def line(s: Statement) -> dict[str, Any]:
        return {
            f"calls_per_{unit}": round(s.calls / per, 2),
            f"exec_ms_per_{unit}": round(s.exec_ms / per, 3),
            f"plan_ms_per_{unit}": round(s.plan_ms / per, 3),
            "ms_per_call": round((s.exec_ms + s.plan_ms) / max(1, s.calls), 3),
            "query": s.query[:220],
        }

    def ranked(items: list[Statement]) -> list[dict[str, Any]]:
        return [line(s) for s in sorted(items, key=lambda s: -(s.exec_ms + s.plan_ms))]

    return {
        f"statements_per_{unit}": round(sum(s.calls for s in top) / per, 2),
        f"nested_statements_per_{unit}": round(sum(s.calls for s in nested) / per, 2),
        f"exec_ms_per_{unit}": round(sum(s.exec_ms for s in top) / per, 3),
        f"plan_ms_per_{unit}": round(sum(s.plan_ms for s in top) / per, 3),
        "top_level": ranked(top),
        "nested": ranked(nested),
        "functions": [
            {
                "name": f.name,
                f"calls_per_{unit}": round(f.calls / per, 2),
                f"total_ms_per_{unit}": round(f.total_ms / per, 3),
                f"self_ms_per_{unit}": round(f.self_ms / per, 3),
            }
            for f in sorted(window.functions, key=lambda f: -f.total_ms)
        ],
    }


def render(summary_: dict[str, Any], unit: str) -> str:
    """A few readable lines of ``summary`` (the JSON line holds everything)."""
    lines = [
        f"  top-level statements per {unit}: {summary_[f'statements_per_{unit}']}"
        f" (exec {summary_[f'exec_ms_per_{unit}']} ms, plan {summary_[f'plan_ms_per_{unit}']} ms);"
        f" nested (functions, triggers): {summary_[f'nested_statements_per_{unit}']}"
    ]
    for s in summary_["top_level"][:TOP]:
        lines.append(
            f"    {s[f'calls_per_{unit}']:7.2f} x {s['ms_per_call']:7.3f} ms"
            f" = {s[f'exec_ms_per_{unit}'] + s[f'plan_ms_per_{unit}']:7.3f}  {s['query'][:150]}"
        )
    if summary_["nested"]:
        lines.append("  nested:")
        for s in summary_["nested"][:12]:
            lines.append(
                f"    {s[f'calls_per_{unit}']:7.2f} x {s['ms_per_call']:7.3f} ms"
                f" = {s[f'exec_ms_per_{unit}']:7.3f}  {s['query'][:150]}"
            )
    by_process = summary_.get(f"postgres_cpu_ms_per_{unit}_by_process")
    if by_process:
        lines.append(f"  PostgreSQL CPU ms per {unit} by process: {by_process}")
    if summary_["functions"]:
        lines.append("  functions (total / self ms):")
        for f in summary_["functions"]:
            lines.append(
                f"    {f[f'calls_per_{unit}']:7.2f} x {f['name']}:"
                f" {f[f'total_ms_per_{unit}']:.3f} / {f[f'self_ms_per_{unit}']:.3f}"
            )
    return "\n".join(lines)


def cpu_by_kind(postmaster: int) -> dict[str, float]:
    """CPU seconds so far of the cluster's processes by kind (backend, autovacuum, ...)."""
    return cpu.children_by_name(postmaster, _kind)


def _kind(cmdline: str) -> str:
    title = cmdline.removeprefix("postgres: ")
    if title.startswith(("autovacuum", "checkpointer", "background writer", "walwriter")):
        return title.split(" worker")[0].split(" launcher")[0]
    if title.startswith(("logical replication", "stats", "archiver")):
        return "other workers"
    if "(" in title:  # "user database host(port) state": a client's backend
        return "backends"
    return "postmaster" if cmdline.startswith("/") else "other workers"
