"""What every call flow is given: the settings, the database and the calls it controls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import asyncpg

from ivr_engine.calls import CallControl, Leg
from ivr_engine.config import Settings
from ivr_engine.flows.held import HoldingCalls


class StartLineTest(Protocol):
    """``LineTests.start`` (flows/line_test.py): test the expert's line now; returns the
    test's id, or raises LineTestRefused. ``after``: the call it was asked from, which is
    let end before the expert's number is dialled."""

    async def __call__(self, expert_id: int, *, source: str, after: Leg | None = None) -> int: ...


@dataclass(frozen=True)
class FlowDeps:
    settings: Settings
    pool: asyncpg.Pool
    calls: CallControl
    # Where Asterisk's CEL rows are read (IVR_CEL_DATABASE_URL); None: the engine's database.
    cel_pool: asyncpg.Pool | None = None
    # This engine's callers holding on the line (flows/holding.py); None: none are taken.
    holding: HoldingCalls | None = None
    # Starts a line self-test (the phone menu's key 0); None: the menu does not offer it.
    line_test: StartLineTest | None = None

    @property
    def cel(self) -> asyncpg.Pool:
        return self.cel_pool or self.pool
