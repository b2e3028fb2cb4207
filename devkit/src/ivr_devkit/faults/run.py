"""One fault run, from the sandbox up to the table: everything started here is ended here,
by PID, whatever happens (the caller holds the sandbox lock; see the package docstring)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from aiosmtpd.controller import Controller

from ivr_devkit.faults.engines import Engines, free_tcp_port
from ivr_devkit.faults.injector import Injector, clock
from ivr_devkit.faults.leases import LeaseWatch
from ivr_devkit.faults.load import Load, Pair
from ivr_devkit.faults.observer import BridgeObserver
from ivr_devkit.faults.report import Report, judge
from ivr_devkit.pgcluster import ThrowawayCluster
from ivr_devkit.sandbox import CelDatabase, SandboxInfo
from ivr_devkit.simphones import PhoneBook, answer
from ivr_engine.store import connect_pool, migrate

DATABASE = "ivr_faults"
LEASE = 3.0  # IVR_LEASE_SECONDS of the engines
CEL_ROLE = "asterisk_cel"
CEL_PASSWORD = "faults-cel"
QUIET = 60.0  # seconds at the end with no new request and no fault: what is in flight ends
PROGRESS_EVERY = 30.0
ENGINE_ENV = {
    "IVR_LEASE_SECONDS": str(LEASE),
    "IVR_DRAIN_SECONDS": "5",
    "IVR_RING_TIMEOUT": "8",
    "IVR_DIGIT_TIMEOUT": "4",
    "IVR_RETRY_DELAY": "3",
    "IVR_LOG_FORMAT": "json",
    "IVR_LOG_LEVEL": "info",
    "IVR_MAIL_FROM": "ivr-engine@faults.invalid",
}


@dataclass(frozen=True)
class Options:
    consultations: int
    seed: int
    max_minutes: float
    pairs: int
    hangup_after: float  # seconds the client talks after answering, then hangs up
    workdir: Path


def say(line: str) -> None:
    print(line, flush=True)


async def run(opts: Options, info_up: Callable[[CelDatabase], SandboxInfo]) -> int:
    """The sandbox is this run's (the caller holds the lock); ``info_up`` brings it up."""
    opts.workdir.mkdir(parents=True, exist_ok=True)
    say(f"work directory (engine logs, phone traces): {opts.workdir}")
    cluster = ThrowawayCluster()
    phones = PhoneBook(opts.workdir / "phones")
    observer: BridgeObserver | None = None
    engines: Engines | None = None
    injector: Injector | None = None
    pool: asyncpg.Pool | None = None
    smtp = Controller(_Sink(), hostname="127.0.0.1", port=free_tcp_port())
    info: SandboxInfo | None = None
    try:
        admin_dsn = await asyncio.to_thread(cluster.start)
        dsn = await _database(admin_dsn)
        pool = await connect_pool(dsn)
        await migrate(pool)
        # Asterisk's own record of every channel (CEL) in the engine's database, written by a
        # role that may only insert it; the table exists before Asterisk loads cel_pgsql.
        await pool.execute(
            f"CREATE ROLE {CEL_ROLE} LOGIN PASSWORD '{CEL_PASSWORD}';"
            f" GRANT INSERT ON cel TO {CEL_ROLE}; GRANT USAGE ON SEQUENCE cel_id_seq TO {CEL_ROLE}"
        )
        port = urlsplit(dsn).port or 5432
        cel = CelDatabase("127.0.0.1", port, DATABASE, CEL_ROLE, CEL_PASSWORD)
        info = await asyncio.to_thread(info_up, cel)
        pairs = await _phones(phones, opts)
        smtp.start()
        observer = BridgeObserver(info)
        await observer.start()
        token = secrets.token_urlsafe(16)
        env = {
            **info.engine_env(),
            **ENGINE_ENV,
            "IVR_DATABASE_URL": dsn,
            "IVR_API_TOKEN": token,
            "IVR_LINK_SECRET": secrets.token_urlsafe(16),
            "IVR_DIAL_ROUTES": json.dumps(phones.routes()),
            "IVR_SMTP_PORT": str(smtp.port),
        }
        engines = Engines(env, opts.workdir)
        await engines.start_new()
        began, began_at = time.monotonic(), datetime.now(UTC)

        def elapsed() -> float:
            return time.monotonic() - began

        injector = Injector(random.Random(opts.seed), engines, cluster, elapsed, say)
        pacing = random.Random(opts.seed + 1)
        leases = LeaseWatch(pool, LEASE, elapsed, engines.alive)
        async with Load(engines, pool, token, pairs, opts.consultations, elapsed, pacing) as load:
            await load.create_experts()
            say(f"load: {opts.consultations} consultations, {len(pairs)} pairs, seed {opts.seed}")
            await _drive(load, injector, leases, opts.max_minutes * 60, elapsed)
            minutes = elapsed() / 60
        report = await _report(
            opts, pool, load, injector, observer, leases, engines, began_at, minutes
        )
        print()
        print(report.render())
        print(f"\nengine logs: {opts.workdir}/engine-*.log; the tables: {opts.workdir}/db/")
        return report.exit_code
    finally:
        if injector is not None:
            await injector.settle()
        if engines is not None:
            await engines.close()
        if info is not None:
            with contextlib.suppress(Exception):
                await _hang_up_leftovers(info)
        if observer is not None:
            await observer.close()
        with contextlib.suppress(Exception):
            await phones.aclose()
        with contextlib.suppress(Exception):
            smtp.stop()
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_dump(pool, opts.workdir), 30)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 10)
        await asyncio.to_thread(cluster.stop)


async def _report(
    opts: Options,
    pool: asyncpg.Pool,
    load: Load,
    injector: Injector,
    observer: BridgeObserver,
    leases: LeaseWatch,
    engines: Engines,
    began: datetime,
    minutes: float,
) -> Report:
    states, verdicts, lost = await judge(
        pool, [o.request_id for o in load.offers], observer, opts.hangup_after
    )
    report = Report(
        offered=len(load.offers),
        pairs=opts.pairs,
        seed=opts.seed,
        minutes=minutes,
        states=states,
        verdicts=verdicts,
        lost=lost,
        faults=injector.faults,
        surprises=injector.surprises,
        emails=await _emails(pool),
        began=began,
    )
    quiet = [(f.at, f.at + f.took + LEASE) for f in injector.faults if f.kind.startswith("Post")]
    numbers = {e.pid: e.number for e in engines.started}
    report.lease_lapses = [
        f"engine {numbers.get(s.pid, '?')} (pid {s.pid}): heartbeat {s.age:.1f} s old"
        f" at [{clock(s.at)}]"
        for s in leases.lapses(quiet)
    ]
    report.notes += [
        f"the observer did not see the bridge: {v.line()}" for v in verdicts if v.observed is None
    ]
    if observer.connections > 1:
        report.notes.append(f"the observer reconnected {observer.connections - 1} times")
    return report


async def _drive(
    load: Load,
    injector: Injector,
    leases: LeaseWatch,
    seconds: float,
    elapsed: Callable[[], float],
) -> None:
    """Load and faults together; the last ``QUIET`` seconds have neither new requests nor
    faults; at ``seconds`` everything stops, final or not."""
    stop_faults = asyncio.Event()
    faults = asyncio.create_task(injector.run(stop_faults), name="faults")
    work = asyncio.create_task(load.run(), name="load")
    progress = asyncio.create_task(_progress(load, injector, elapsed), name="progress")
    watch = asyncio.create_task(leases.run(), name="leases")
    try:
        await asyncio.wait([work], timeout=max(0.0, seconds - QUIET - elapsed()))
        load.offering = False
        stop_faults.set()
        await faults  # a fault under way is finished: there is an engine afterwards
        await injector.check_engine()
        await asyncio.wait([work], timeout=max(1.0, seconds - elapsed()))
        if not work.done():
            say(f"[{clock(elapsed())}] --max-minutes reached: what is not final counts as lost")
        load.stopped.set()
        await work
    finally:
        for task in (faults, work, progress, watch):
            task.cancel()
        await asyncio.gather(faults, work, progress, watch, return_exceptions=True)


_STATES = (
    "SELECT state, count(*) AS n FROM requests WHERE id = ANY($1::bigint[])"
    " GROUP BY state ORDER BY state"
)


async def _progress(load: Load, injector: Injector, elapsed: Callable[[], float]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        ids = [o.request_id for o in load.offers]
        rows = await load.read(functools.partial(load.pool.fetch, _STATES, ids))
        states = ", ".join(f"{r['state']} {r['n']}" for r in rows) or "-"
        say(f"[{clock(elapsed())}] offered {len(ids)}: {states}; faults {len(injector.faults)}")


async def _database(admin_dsn: str) -> str:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    return admin_dsn.rpartition("/")[0] + "/" + DATABASE


async def _phones(book: PhoneBook, opts: Options) -> list[Pair]:
    """Experts who answer and press 1; clients who talk ``hangup_after`` s and hang up. Each
    phone takes enough calls for the calls an engine stop interrupts and places again."""
    per_pair = -(-opts.consultations // opts.pairs)
    calls = 3 * per_pair + 20
    timeout = opts.max_minutes * 60 + 300
    pairs = []
    for i in range(opts.pairs):
        pair = Pair(i + 1, f"+3906000007{i + 1:02d}", f"+3933300008{i + 1:02d}")
        await book.phone(
            pair.expert_phone, answer("1", dtmf_delay_ms=1000), calls, timeout_s=timeout
        )
        hangup_ms = int(opts.hangup_after * 1000)
        await book.phone(
            pair.client_phone, answer(hangup_after_ms=hangup_ms), calls, timeout_s=timeout
        )
        pairs.append(pair)
    return pairs


async def _emails(pool: asyncpg.Pool) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT count(*) AS queued, count(sent_at) AS sent FROM outbox_emails"
        " WHERE kind = 'consultation_earnings'"
    )
    return (int(row["queued"]), int(row["sent"])) if row else (0, 0)


DUMPED = ("requests", "request_events", "call_attempts", "consultations", "engines")


async def _dump(pool: asyncpg.Pool, workdir: Path) -> None:
    """The run's tables as CSV, for a post-mortem once the cluster is gone."""
    (workdir / "db").mkdir(exist_ok=True)
    for table in DUMPED:
        with (workdir / "db" / f"{table}.csv").open("wb") as out:
            await pool.copy_from_query(
                f"SELECT * FROM {table} ORDER BY 1", output=out, format="csv", header=True
            )


async def _hang_up_leftovers(info: SandboxInfo) -> None:
    """Whatever the last engine left up in Asterisk (it was killed) is hung up."""
    user = base64.b64encode(f"{info.ari_user}:{info.ari_password}".encode()).decode()
    headers = {"Authorization": f"Basic {user}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for kind in ("channels", "bridges"):
            async with http.get(f"{info.ari_url}/{kind}") as resp:
                items = await resp.json() if resp.status == 200 else []
            for item in items:
                async with http.delete(f"{info.ari_url}/{kind}/{item['id']}"):
                    pass


class _Sink:
    """An SMTP server's handler that accepts every email (the engines' earnings emails)."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"
