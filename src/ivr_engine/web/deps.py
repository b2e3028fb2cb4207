"""What the web layer is given: explicit dependencies, never the whole engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from ivr_engine.config import Settings
from ivr_engine.services import RequestActions
from ivr_engine.web.live import Hub

Health = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class WebDeps:
    settings: Settings
    pool: asyncpg.Pool
    actions: RequestActions
    hub: Hub
    health: Health


DEPS: web.AppKey[WebDeps] = web.AppKey("deps", WebDeps)
