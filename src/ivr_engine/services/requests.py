"""Waiting-list actions: a client joins or leaves, an expert asks to be called or refuses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from ivr_engine.domain.holding import Policy
from ivr_engine.domain.planning import Reason
from ivr_engine.domain.requests import RequestView
from ivr_engine.errors import ListClosed
from ivr_engine.store import offers, planning, waiting

CancelFlow = Callable[..., Awaitable[None]]  # (request_id, *, put_back=True)


async def _no_flow(_request_id: int, *, put_back: bool = True) -> None:
    return None


class RequestActions:
    """``cancel_flow`` stops this engine's call flow of a request (the dispatcher's)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cancel_flow: CancelFlow = _no_flow,
        *,
        line_test_hours: float = 0.0,
        policy: Policy = "fifo",
    ) -> None:
        self.pool = pool
        self._cancel_flow = cancel_flow
        # IVR_LINE_TEST_REQUIRED_HOURS: a solicit that ends a pause needs a recent passed test.
        self.line_test_hours = line_test_hours
        self.policy = policy  # IVR_PRIORITY_POLICY: how API requests are ordered

    async def join(self, expert_id: int, client_id: int) -> RequestView:
        """The client enters the expert's waiting list, if it is open (a pause does not
        close it: the request waits until the expert is back)."""
        async with self.pool.acquire() as conn:  # its three reads on one connection
            av = await planning.load(conn, expert_id)
        now = av.at(datetime.now(UTC))
        if not now.open and now.reason is not Reason.PAUSED:
            raise ListClosed(expert_id, now.reason.value, now.next_opening)
        return await waiting.create(self.pool, expert_id, client_id, policy=self.policy)

    async def leave(self, request_id: int) -> RequestView:
        """The client leaves: the request is lost and any call of it is hung up."""
        view = await waiting.leave(self.pool, request_id)
        await self._cancel_flow(request_id)
        return view

    async def hand_back(self, request_id: int, expert_id: int, reason: str) -> RequestView:
        """The expert who won a category request cannot help: it goes back to distribution
        (never to them again) and this engine's call of it is hung up."""
        await offers.check_hand_back(self.pool, request_id, expert_id)
        # The call first (its request left as it is, so nothing claims it meanwhile), then
        # the move back to distribution.
        await self._cancel_flow(request_id, put_back=False)
        return await offers.hand_back(self.pool, request_id, expert_id, reason)

    async def solicit(self, request_id: int) -> RequestView:
        """The expert asks to be called now for a waiting client (API, email link, panel).
        This ends a pause, so it is refused (LineTestRequired) like "return available" when
        a recent passed line test is required and missing."""
        if self.line_test_hours > 0:
            view = await waiting.get(self.pool, request_id)
            if view.expert_id is not None:
                await planning.require_test_to_end_pause(
                    self.pool, view.expert_id, self.line_test_hours
                )
        return await waiting.solicit(self.pool, request_id)

    async def refuse_all(self, expert_id: int) -> tuple[int, datetime | None]:
        """Refuse every waiting client of the expert, each emailed an appointment at the
        next opening (API, panel; the phone menu calls the same store function)."""
        return await planning.refuse_all(self.pool, expert_id)
