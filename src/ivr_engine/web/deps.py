"""What the web layer is given: explicit dependencies, never the whole engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry

from ivr_engine.config import Settings
from ivr_engine.flows.deps import StartLineTest
from ivr_engine.services import RequestActions
from ivr_engine.web.live import Hub

Health = Callable[[], Awaitable[dict[str, Any]]]


class Metrics(Protocol):
    """What /metrics reads: a registry, refreshed (database figures) before each scrape."""

    @property
    def registry(self) -> CollectorRegistry: ...

    async def refresh(self) -> None: ...


class NoMetrics:
    """An empty registry: an app built without an engine's telemetry (tests, tools)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    async def refresh(self) -> None:
        return None


@dataclass(frozen=True)
class WebDeps:
    settings: Settings
    pool: asyncpg.Pool
    actions: RequestActions
    hub: Hub
    health: Health
    metrics: Metrics = field(default_factory=NoMetrics)
    # Starts a line self-test (the panel's "Test my line"); None: the button is not shown.
    line_test: StartLineTest | None = None


DEPS: web.AppKey[WebDeps] = web.AppKey("deps", WebDeps)
