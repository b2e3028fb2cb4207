"""What every call flow is given: the settings, the database and the calls it controls."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ivr_engine.calls import CallControl
from ivr_engine.config import Settings


@dataclass(frozen=True)
class FlowDeps:
    settings: Settings
    pool: asyncpg.Pool
    calls: CallControl
