"""The engine's /metrics: figures read from the engine's own objects at each scrape, the
database's figures (store.stats) refreshed just before, and the event loop's lag.

Nothing here is counted by the flows themselves: calls in progress are the call legs the
engine holds, reconnects are ARI's WebSocket openings, the money and the dial outcomes are
what PostgreSQL recorded. So the figures survive a restart and agree with the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ivr_engine.domain.requests import RequestState
from ivr_engine.store import stats

log = structlog.get_logger(__name__)

LAG_INTERVAL = 0.5  # seconds between two looks at the event loop


@dataclass(frozen=True)
class Probes:
    """How to read the engine's live state; each a cheap, synchronous look."""

    pool: Callable[[], asyncpg.Pool | None]
    call_legs: Callable[[], int]
    flows: Callable[[], int]
    ari_connected: Callable[[], bool]
    ari_connections: Callable[[], int]
    ami_healthy: Callable[[], bool]
    draining: Callable[[], bool]


class Telemetry(Collector):
    def __init__(self, probes: Probes, version: str) -> None:
        self.registry = CollectorRegistry()
        self._probes = probes
        self._figures: stats.Figures | None = None
        self._lag_task: asyncio.Task[None] | None = None
        info = Gauge("ivr_engine_info", "The engine's version", ["version"], registry=self.registry)
        info.labels(version).set(1)
        self.lag = Gauge(
            "ivr_event_loop_lag_seconds",
            "How late the event loop ran a timer, at the last look",
            registry=self.registry,
        )
        self.lag_histogram = Histogram(
            "ivr_event_loop_lag_histogram_seconds",
            "How late the event loop ran its timers",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.registry.register(self)

    # -- the event loop --------------------------------------------------------------------

    def start(self) -> None:
        if self._lag_task is None:
            self._lag_task = asyncio.create_task(self._watch_loop(), name="telemetry-loop-lag")

    async def close(self) -> None:
        task, self._lag_task = self._lag_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_INTERVAL)
            late = max(0.0, loop.time() - before - LAG_INTERVAL)
            self.lag.set(late)
            self.lag_histogram.observe(late)

    # -- a scrape ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the database's figures; on failure they are left out and
        ``ivr_database_up`` says 0."""
        pool = self._probes.pool()
        try:
            self._figures = await stats.snapshot(pool) if pool is not None else None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            log.warning("metrics.database_unavailable", error=repr(err))
            self._figures = None

    def collect(self) -> Iterator[Metric]:
        p = self._probes
        yield _gauge("ivr_calls_in_progress", "Call legs this engine holds", p.call_legs())
        yield _gauge("ivr_flows_in_progress", "Requests this engine is calling for", p.flows())
        yield _gauge("ivr_ari_connected", "1 while the ARI WebSocket is open", p.ari_connected())
        reconnects = CounterMetricFamily(
            "ivr_ari_reconnects", "ARI WebSocket openings after the first one"
        )
        reconnects.add_metric([], max(0, p.ari_connections() - 1))
        yield reconnects
        yield _gauge("ivr_ami_healthy", "1 while AMI answers CoreStatus", p.ami_healthy())
        yield _gauge("ivr_draining", "1 while the engine is stopping", p.draining())
        yield from self._pool_metrics()
        up = self._figures is not None
        yield _gauge("ivr_database_up", "1 if the last scrape read the database", up)
        if self._figures is not None:
            yield from _database_metrics(self._figures)

    def _pool_metrics(self) -> Iterator[Metric]:
        pool = self._probes.pool()
        if pool is None:
            return
        size, idle = pool.get_size(), pool.get_idle_size()
        use = GaugeMetricFamily(
            "ivr_db_pool_connections", "PostgreSQL pool connections", labels=["state"]
        )
        use.add_metric(["in_use"], size - idle)
        use.add_metric(["idle"], idle)
        yield use
        yield _gauge("ivr_db_pool_max", "Most connections the pool opens", pool.get_max_size())


def _gauge(name: str, doc: str, value: float | bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _database_metrics(f: stats.Figures) -> Iterator[Metric]:
    requests = GaugeMetricFamily("ivr_requests", "Requests by state", labels=["state"])
    for state in RequestState:
        requests.add_metric([state.value], f.requests_by_state.get(state.value, 0))
    yield requests
    yield _gauge(
        "ivr_consultations_in_progress",
        "Consultations bridged and not ended",
        f.consultations_in_progress,
    )
    dials = CounterMetricFamily(
        "ivr_dial_outcomes",
        "Finished dials by leg, outcome and Q.850 hangup cause",
        labels=["leg", "outcome", "cause"],
    )
    for (leg, outcome, cause), count in sorted(f.dial_outcomes.items()):
        dials.add_metric([leg, outcome, cause], count)
    yield dials
    yield CounterMetricFamily(
        "ivr_bridged_seconds", "Seconds billed of ended consultations", value=f.bridged_seconds
    )
    yield CounterMetricFamily(
        "ivr_billed_euros", "Client price of ended consultations, EUR", value=float(f.billed_euros)
    )
    yield _gauge("ivr_outbox_backlog", "Emails waiting to be sent", f.outbox_pending)
    yield _gauge("ivr_outbox_retrying", "Emails waiting after a failed try", f.outbox_retrying)
    yield _gauge("ivr_outbox_failed", "Emails given up after the last retry", f.outbox_failed)
