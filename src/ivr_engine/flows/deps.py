"""What every call flow is given: the settings, the database and the calls it controls."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ivr_engine.calls import CallControl
from ivr_engine.config import Settings
from ivr_engine.flows.held import HoldingCalls


@dataclass(frozen=True)
class FlowDeps:
    settings: Settings
    pool: asyncpg.Pool
    calls: CallControl
    # Where Asterisk's CEL rows are read (IVR_CEL_DATABASE_URL); None: the engine's database.
    cel_pool: asyncpg.Pool | None = None
    # This engine's callers holding on the line (flows/holding.py); None: none are taken.
    holding: HoldingCalls | None = None

    @property
    def cel(self) -> asyncpg.Pool:
        return self.cel_pool or self.pool
