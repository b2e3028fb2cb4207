"""One bench run, from the sandbox up to the figures: everything started here is ended here,
by PID, whatever happens (the caller holds the sandbox lock; see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiosmtpd.controller import Controller

from ivr_devkit.bench import claims as claim_step
from ivr_devkit.bench import cpu, machine, traces
from ivr_devkit.bench.ami import BenchAmi
from ivr_devkit.faults.engines import EngineProcess, Engines, free_tcp_port
from ivr_devkit.faults.observer import BridgeObserver
from ivr_devkit.pgcluster import ThrowawayCluster
from ivr_devkit.sandbox import SandboxInfo
from ivr_devkit.simphones import Phone, PhoneBook, answer
from ivr_engine.store import connect_pool, migrate

DATABASE = "ivr_bench"
KEY_MS = 1000  # the expert presses 1 this long after answering (during the offer)
TALK_MS = 4000  # and hangs up this long after the key: the consultation's end
CYCLE = 12.0  # seconds between two consultations of one expert/client pair
DRAIN = 25.0  # seconds after the last offer for the calls in flight to end
RING_S = 20
ALIAS = "Marco"
RATE = "1.50"
# The offer as the engine says it (flows/acceptance.py, prompts.rate_media) for ALIAS and
# RATE, as files for the dialplan's Read().
OFFER = "&".join(
    [
        "ivr-engine/offer_request_from",
        *(f"letters/{ch.lower()}" for ch in ALIAS),
        "ivr-engine/offer_at_rate",
        "digits/1",
        "ivr-engine/euro",
        "ivr-engine/and",
        "digits/50",
        "ivr-engine/cents_per_minute",
        "ivr-engine/accept_or_refuse",
    ]
)
EXPERT_PREFIX, CLIENT_PREFIX = "+39061", "+39333"
ENGINE_ENV = {
    "IVR_RING_TIMEOUT": str(RING_S),
    "IVR_LOG_FORMAT": "json",
    "IVR_LOG_LEVEL": "info",
    "IVR_MAIL_FROM": "ivr-engine@bench.invalid",
}
ENGINE_FINAL = ("completed", "refused", "lost", "client_unreachable", "failed")


@dataclass(frozen=True)
class Options:
    rates: tuple[float, ...]
    seconds: float  # offering time per rate and side
    claim_sizes: tuple[claim_step.Size, ...]
    claim_rounds: int
    workdir: Path
    out_dir: Path
    quick: bool
    engine_only: bool = False


@dataclass(frozen=True)
class Pair:
    index: int
    expert: str
    client: str
    expert_id: int = 0


def say(line: str) -> None:
    print(line, flush=True)


class Bench:
    """The processes of one run and the phases it drives through them."""

    def __init__(self, opts: Options, info: SandboxInfo, asterisk_pid: int) -> None:
        self.opts = opts
        self.info = info
        self.asterisk_pid = asterisk_pid
        self.cluster_pid: int | None = None
        self.engine: EngineProcess | None = None
        self.pool: asyncpg.Pool | None = None
        self.http: aiohttp.ClientSession | None = None
        self.ami: BenchAmi | None = None
        self.observer: BridgeObserver | None = None
        self.expert_phone: Phone | None = None
        self.client_phone: Phone | None = None
        self.pairs: list[Pair] = []
        self.token = secrets.token_urlsafe(16)

    # -- the two sides ------------------------------------------------------------------
    async def engine_phase(self, rate: float) -> dict[str, Any]:
        assert self.engine is not None and self.http is not None and self.pool is not None
        engine, http, pool = self.engine, self.http, self.pool
        before_lag = await self._lag_buckets()
        ids: list[int] = []
        refused: dict[str, int] = {}

        async def place(pair: Pair) -> None:
            body = {"client_phone": pair.client, "client_alias": ALIAS}
            url = f"{engine.base}/api/v1/experts/{pair.expert_id}/requests"
            async with http.post(url, json=body) as resp:
                answer_ = await resp.json(content_type=None)
                if resp.status == 201:
                    ids.append(int(answer_["id"]))
                else:
                    key = f"api {resp.status}"
                    refused[key] = refused.get(key, 0) + 1

        async def wait_final(deadline: float) -> None:
            loop = asyncio.get_running_loop()
            while loop.time() < deadline:
                left = await pool.fetchval(
                    "SELECT count(*) FROM requests WHERE id = ANY($1::bigint[])"
                    " AND NOT state = ANY($2::text[])",
                    ids,
                    list(ENGINE_FINAL),
                )
                if left == 0:
                    return
                await asyncio.sleep(1.0)

        result = await self._phase("engine", rate, place, wait_final)
        rows = await pool.fetch(
            "SELECT state, end_reason, count(*) AS n FROM requests"
            " WHERE id = ANY($1::bigint[]) GROUP BY 1, 2",
            ids,
        )
        completed = sum(r["n"] for r in rows if r["state"] == "completed")
        reasons = {f"{r['state']} {r['end_reason']}".strip(): r["n"] for r in rows}
        reasons.pop(next((k for k in reasons if k.startswith("completed")), ""), None)
        reasons.update(refused)
        result.update(completed=completed, failed=result["offered"] - completed, reasons=reasons)
        result["loop_lag_p99_ms"] = _lag_p99_ms(before_lag, await self._lag_buckets())
        return result

    async def dialplan_phase(self, rate: float) -> dict[str, Any]:
        assert self.ami is not None and self.expert_phone and self.client_phone
        ami, experts, clients = self.ami, self.expert_phone, self.client_phone
        ids: list[int] = []
        base = max([*ami.ends, *ami.refused], default=0) + 1

        async def place(pair: Pair) -> None:
            bench_id = base + len(ids)
            ids.append(bench_id)
            ami.originate(
                bench_id,
                f"PJSIP/phone-network/sip:{pair.expert}@127.0.0.1:{experts.port}",
                {
                    "BENCH_OFFER": OFFER,
                    "BENCH_CLIENT": f"PJSIP/phone-network/sip:{pair.client}@127.0.0.1:"
                    f"{clients.port}",
                },
                RING_S * 1000,
            )

        async def wait_final(deadline: float) -> None:
            await ami.wait_ends(set(ids), deadline)

        result = await self._phase("dialplan", rate, place, wait_final)
        reasons: dict[str, int] = {}
        completed = 0
        for bench_id in ids:
            end = ami.ends.get(bench_id)
            if end is not None and end.choice == "1" and end.dial == "ANSWER":
                completed += 1
                continue
            if bench_id in ami.refused:
                why = f"originate refused: {ami.refused[bench_id]}"
            elif end is None:
                why = "no end before the deadline"
            else:
                why = f"choice {end.choice or '-'} dial {end.dial or '-'}"
            reasons[why] = reasons.get(why, 0) + 1
        result.update(completed=completed, failed=result["offered"] - completed, reasons=reasons)
        result["loop_lag_p99_ms"] = None
        return result

    async def _phase(
        self,
        side: str,
        rate: float,
        place: Callable[[Pair], Any],
        wait_final: Callable[[float], Any],
    ) -> dict[str, Any]:
        await self._quiet()
        pids = {
            "asterisk": self.asterisk_pid,
            "engine": (self.engine.pid if self.engine and side == "engine" else None),
            "postgres": (self.cluster_pid if side == "engine" else None),
        }
        loop = asyncio.get_running_loop()
        count = max(1, round(rate * self.opts.seconds))
        since = datetime.now(UTC)
        before = cpu.sample(pids)
        began = loop.time()
        tasks = []
        for k in range(count):
            delay = began + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pair = self.pairs[k % len(self.pairs)]
            tasks.append(asyncio.create_task(place(pair), name=f"place-{side}-{k}"))
        await asyncio.gather(*tasks)
        await wait_final(loop.time() + DRAIN)
        elapsed = loop.time() - began
        used = cpu.sample(pids).minus(before)
        until = datetime.now(UTC)
        lat = self._latencies(since, until)
        say(
            f"  {side:8} {rate:g}/s: {count} offered in {self.opts.seconds:g} s,"
            f" all final after {elapsed:.0f} s"
        )
        return {
            "side": side,
            "rate": rate,
            "offered": count,
            "seconds": round(elapsed, 1),
            "cpu_seconds": {k: round(v, 3) for k, v in used.items() if pids[k]},
            "key_to_invite_p50_ms": _ms(traces.percentile(lat.key_to_invite, 50)),
            "key_to_invite_p99_ms": _ms(traces.percentile(lat.key_to_invite, 99)),
            "answer_to_bridge_p50_ms": _ms(traces.percentile(lat.answer_to_bridge, 50)),
            "answer_to_bridge_p99_ms": _ms(traces.percentile(lat.answer_to_bridge, 99)),
            "latency_samples": [len(lat.key_to_invite), len(lat.answer_to_bridge)],
        }

    def _latencies(self, since: datetime, until: datetime) -> traces.Latencies:
        assert self.expert_phone and self.client_phone and self.observer
        experts = traces.calls(self.expert_phone.messages())
        clients = traces.calls(self.client_phone.messages())
        entries = [
            (e.bridge_id, e.protocol_id, e.at)
            for e in self.observer.events
            if e.kind == "entered" and since <= e.at <= until
        ]
        partner = {p.client: p.expert for p in self.pairs}
        return traces.latencies(
            experts, clients, traces.bridged(entries), partner, KEY_MS, since, until
        )

    async def _quiet(self, timeout: float = 30.0) -> None:
        """Wait until Asterisk holds no channel: a phase starts from nothing."""
        assert self.http is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            url = f"{self.info.ari_url}/channels"
            async with self.http.get(url, headers=self.ari_headers) as r:
                if r.status == 200 and not await r.json():
                    return
            await asyncio.sleep(0.5)
        say("  (channels were still up when the phase began)")

    @property
    def ari_headers(self) -> dict[str, str]:
        """Basic auth for ARI (the session's own header is the engine's bearer token)."""
        login = aiohttp.BasicAuth(self.info.ari_user, self.info.ari_password)
        return {"Authorization": login.encode()}

    async def _lag_buckets(self) -> dict[float, float]:
        assert self.engine is not None and self.http is not None
        async with self.http.get(f"{self.engine.base}/metrics") as resp:
            text = await resp.text()
        buckets: dict[float, float] = {}
        for line in text.splitlines():
            if line.startswith("ivr_event_loop_lag_histogram_seconds_bucket{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                buckets[float("inf") if le == "+Inf" else float(le)] = float(line.split()[-1])
        return buckets

    # -- setting up -------------------------------------------------------------------------
    async def make_pairs(self) -> None:
        assert self.engine is not None and self.http is not None
        count = max(10, round(max(self.opts.rates) * CYCLE))
        for i in range(1, count + 1):
            pair = Pair(i, f"{EXPERT_PREFIX}{i:07d}", f"{CLIENT_PREFIX}{i:07d}")
            body = {
                "alias": "Anna",
                "phone": pair.expert,
                "rate_per_minute": RATE,
                "email": f"expert{i}@bench.invalid",
            }
            async with self.http.post(f"{self.engine.base}/api/v1/experts", json=body) as resp:
                found = await resp.json(content_type=None)
                if resp.status != 201:
                    raise RuntimeError(f"expert {pair.expert}: {resp.status} {found}")
            self.pairs.append(Pair(i, pair.expert, pair.client, int(found["id"])))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _lag_p99_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The upper bound of the histogram bucket holding the 99th percentile of the phase."""
    counts = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not counts or counts[-1][1] <= 0:
        return None
    target = 0.99 * counts[-1][1]
    for le, n in counts:
        if n >= target:
            return None if le == float("inf") else le * 1000
    return None


async def run(opts: Options, info_up: Callable[[], tuple[SandboxInfo, int]]) -> int:
    """``info_up`` brings the sandbox up and says Asterisk's PID (the caller holds the lock)."""
    opts.workdir.mkdir(parents=True, exist_ok=True)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    say(f"work directory (engine log, phone traces): {opts.workdir}")
    cluster = ThrowawayCluster()
    phones = PhoneBook(opts.workdir / "phones")
    smtp = Controller(_Sink(), hostname="127.0.0.1", port=free_tcp_port())
    engines: Engines | None = None
    bench: Bench | None = None
    results: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        admin_dsn = await asyncio.to_thread(cluster.start)
        dsn = await _database(admin_dsn)
        pool = await connect_pool(dsn)
        await migrate(pool)
        info, asterisk_pid = await asyncio.to_thread(info_up)
        bench = Bench(opts, info, asterisk_pid)
        bench.pool, bench.cluster_pid = pool, cluster.pid
        bench.expert_phone = await phones.phone(
            f"{EXPERT_PREFIX}0000000",
            answer("1", dtmf_delay_ms=KEY_MS, hangup_after_ms=TALK_MS),
            10**6,
            timeout_s=3600,
        )
        bench.client_phone = await phones.phone(
            f"{CLIENT_PREFIX}0000000", answer(), 10**6, timeout_s=3600
        )
        smtp.start()
        routes = {
            "*": "PJSIP/phone-network/sip:{number}@127.0.0.1:9",
            EXPERT_PREFIX: bench.expert_phone.dial_string.replace(
                bench.expert_phone.number, "{number}"
            ),
            CLIENT_PREFIX: bench.client_phone.dial_string.replace(
                bench.client_phone.number, "{number}"
            ),
        }
        env = {
            **info.engine_env(),
            **ENGINE_ENV,
            "IVR_DATABASE_URL": dsn,
            "IVR_API_TOKEN": bench.token,
            "IVR_LINK_SECRET": secrets.token_urlsafe(16),
            "IVR_DIAL_ROUTES": json.dumps(routes),
            "IVR_SMTP_PORT": str(smtp.port),
        }
        engines = Engines(env, opts.workdir)
        bench.engine = await engines.start_new()
        headers = {"Authorization": f"Bearer {bench.token}"}
        bench.http = aiohttp.ClientSession(headers=headers)
        bench.ami = BenchAmi(
            info.ami_host, info.ami_port, info.bench_ami_user, info.bench_ami_secret
        )
        await bench.ami.connect()
        bench.observer = BridgeObserver(info, app="bench-observer", only_bridges=True)
        await bench.observer.start()
        await bench.make_pairs()
        say(f"{len(bench.pairs)} expert/client pairs; rates {list(opts.rates)} calls/s")
        for rate in opts.rates:
            if not opts.engine_only:
                results.append(await bench.dialplan_phase(rate))
            results.append(await bench.engine_phase(rate))
        if opts.engine_only:
            for phase in results:
                done = max(1, phase["completed"])
                per = {k: round(v * 1000 / done, 1) for k, v in phase["cpu_seconds"].items()}
                say(f"engine only: {json.dumps({**phase, 'cpu_ms_per_completed': per})}")
            return 0
        say("claims: filling the waiting lists ...")
        claim_results = await claim_step.run(admin_dsn, opts.claim_sizes, opts.claim_rounds)
        figures = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": opts.quick,
            "minutes": round((time.monotonic() - began) / 60, 1),
            "machine": await machine.describe(info, asterisk_pid, bench.http, bench.ari_headers),
            "flow": {
                "key_ms": KEY_MS,
                "talk_ms": TALK_MS,
                "alias": ALIAS,
                "rate": RATE,
                "offer_seconds_per_rate": opts.seconds,
            },
            "phases": results,
            "claims": claim_results,
        }
        from ivr_devkit.bench import report  # matplotlib only once there is something to draw

        print()
        print(report.render(figures))
        paths = report.write(figures, opts.out_dir)
        say("\n" + "\n".join(f"wrote {p}" for p in paths))
        return 0
    finally:
        if bench is not None:
            for closing in (bench.observer, bench.ami):
                if closing is not None:
                    with contextlib.suppress(Exception):
                        await closing.close()
            if bench.http is not None:
                await bench.http.close()
            if bench.pool is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(bench.pool.close(), 10)
        if engines is not None:
            await engines.close()
        with contextlib.suppress(Exception):
            await phones.aclose()
        with contextlib.suppress(Exception):
            smtp.stop()
        await asyncio.to_thread(cluster.stop)


async def _database(admin_dsn: str) -> str:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    return admin_dsn.rpartition("/")[0] + "/" + DATABASE


class _Sink:
    """An SMTP server's handler that accepts every email (the earnings emails)."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


async def run_claims_only(opts: Options) -> int:
    """Only the claim step (``--claims-only``): a throwaway PostgreSQL, no sandbox, no lock;
    prints the figures of each size as JSON and the plans of the largest."""
    cluster = ThrowawayCluster()
    try:
        admin_dsn = await asyncio.to_thread(cluster.start)
        say("claims: filling the waiting lists ...")
        for result in await claim_step.run(admin_dsn, opts.claim_sizes, opts.claim_rounds):
            found = result.pop("plans", None)
            say(f"claims: {json.dumps(result)}")
            if isinstance(found, dict):
                for name, plan in found.items():
                    say(f"\n{name}:\n{plan}")
        return 0
    finally:
        await asyncio.to_thread(cluster.stop)
