"""Where a holding caller's task and their request's acceptance flow meet (flows/holding.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from ivr_engine.calls import Leg

log = structlog.get_logger(__name__)

TAKE_BUDGET = 5.0  # seconds for the hold loop to fall silent once the expert has accepted


@dataclass
class HeldCall:
    leg: Leg
    request_id: int
    taken: asyncio.Event = field(default_factory=asyncio.Event)  # the acceptance flow took it
    quiet: asyncio.Event = field(default_factory=asyncio.Event)  # music and prompts stopped
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # the request's flow ended


class HoldingCalls:
    """Holding callers of this engine, by request id."""

    def __init__(self) -> None:
        self._held: dict[int, HeldCall] = {}
        # The engine vanishes as in a crash (tests): calls are left as they are, untouched.
        self.detached = False

    def add(self, call: HeldCall) -> None:
        self._held[call.request_id] = call

    def remove(self, call: HeldCall) -> None:
        if self._held.get(call.request_id) is call:
            del self._held[call.request_id]

    def settled(self, request_id: int) -> None:
        """The dispatcher's flow of this request ended: the hold loop looks at it again."""
        call = self._held.get(request_id)
        if call is not None:
            call.wake.set()

    async def take(self, request_id: int) -> Leg | None:
        """The expert accepted: the caller's leg, silenced, for the bridge; None when the
        caller is no longer holding here (the flow then calls their number instead)."""
        call = self._held.get(request_id)
        if call is None or call.leg.is_gone:
            return None
        call.taken.set()
        try:
            await asyncio.wait_for(call.quiet.wait(), TAKE_BUDGET)
        except TimeoutError:
            log.warning("holding.take_slow", request_id=request_id)
        return None if call.leg.is_gone else call.leg
