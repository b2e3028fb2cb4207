"""The load: expert/client pairs placing consultation requests through the HTTP API, each pair
placing its next request once the previous one is final.

The API lives in the engine, which the faults kill and restart: every call is retried against
whichever engine serves now. A request whose POST may have gone through (the engine died
before it answered) is looked up in PostgreSQL before it is placed again, so no pair ever
has two requests at once. States are read from PostgreSQL, which is retried through its own
outages.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import asyncpg

from ivr_devkit.faults.engines import Engines
from ivr_engine.store.retry import TRANSIENT

T = TypeVar("T")
FINAL = ("completed", "refused", "lost", "client_unreachable", "failed")
STAGGER = 2.5  # seconds between the first requests of two pairs: not all in one phase
PAUSE = (0.0, 3.0)  # seconds a pair waits before its next request
POLL = 0.5  # seconds between two looks at a request's state
RETRY = 0.5  # seconds before an API call or a read is tried again
# After a PostgreSQL restart asyncpg 0.32 may also raise InternalClientError ("cannot switch
# to state 12; another operation is in progress") on a pooled connection: read again.
READ_AGAIN: tuple[type[BaseException], ...] = (*TRANSIENT, asyncpg.InternalClientError)
MAX_REFUSALS = 20  # 4xx answers in a row to one placement before the driver gives up


class LoadError(Exception):
    """The API refused the load in a way no fault explains."""


@dataclass
class Pair:
    index: int
    expert_phone: str
    client_phone: str
    expert_id: int = 0


@dataclass(frozen=True)
class Offer:
    request_id: int
    pair: int
    at: float  # seconds since the run began


class Load:
    def __init__(
        self,
        engines: Engines,
        pool: asyncpg.Pool,
        token: str,
        pairs: list[Pair],
        target: int,
        elapsed: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.engines = engines
        self.pool = pool
        self.token = token
        self.pairs = pairs
        self.elapsed = elapsed
        self.rng = rng
        self.offers: list[Offer] = []
        self._left = target
        self.offering = True  # cleared for the quiet end: no new request
        self.stopped = asyncio.Event()  # the hard end: stop waiting for anything
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Load:
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=10),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    # --- the experts and the pairs' loops ----------------------------------------------------

    async def create_experts(self) -> None:
        for pair in self.pairs:
            body = {
                "alias": f"Expert{pair.index}",
                "phone": pair.expert_phone,
                "rate_per_minute": "1.50",
                "email": f"expert{pair.index}@example.org",
            }
            status, answer = await self._api("POST", "/api/v1/experts", body)
            if status != 201:
                raise LoadError(f"expert {pair.expert_phone}: {status} {answer}")
            pair.expert_id = int(answer["id"])

    async def run(self) -> None:
        """Every pair in parallel, until the target is offered and final, or the end."""
        await asyncio.gather(*(self._pair(pair) for pair in self.pairs))

    async def _pair(self, pair: Pair) -> None:
        last = 0
        pause = (pair.index - 1) * STAGGER
        while not self.stopped.is_set():
            await asyncio.sleep(pause)
            pause = self.rng.uniform(*PAUSE)
            if not self.offering or self._left <= 0:
                return
            self._left -= 1
            request_id = await self._place(pair, last)
            if request_id is None:
                return
            self.offers.append(Offer(request_id, pair.index, self.elapsed()))
            last = request_id
            await self._wait_final(request_id)

    async def _place(self, pair: Pair, after: int) -> int | None:
        """POST the pair's next request; None if the run ended first."""
        body = {"client_phone": pair.client_phone, "client_alias": f"Client{pair.index}"}
        path = f"/api/v1/experts/{pair.expert_id}/requests"
        refusals = 0
        while not self.stopped.is_set():
            try:
                status, answer = await self._request("POST", path, body)
                if status == 201:
                    return int(answer["id"])
                if 400 <= status < 500:
                    refusals += 1
                    if refusals >= MAX_REFUSALS:
                        raise LoadError(f"{path}: {status} {answer}")
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            # Maybe the POST went through and only its answer was lost: look before retrying.
            found = await self.read(
                lambda: self.pool.fetchval(
                    "SELECT max(id) FROM requests WHERE expert_id = $1 AND id > $2",
                    pair.expert_id,
                    after,
                )
            )
            if found is not None:
                return int(found)
            await asyncio.sleep(RETRY)
        return None

    async def _wait_final(self, request_id: int) -> None:
        while not self.stopped.is_set():
            state = await self.read(
                lambda: self.pool.fetchval("SELECT state FROM requests WHERE id = $1", request_id)
            )
            if state in FINAL:
                return
            try:
                await asyncio.wait_for(self.stopped.wait(), POLL)
            except TimeoutError:
                pass

    # --- I/O that outlives the faults ----------------------------------------------------------

    async def read(self, query: Callable[[], Awaitable[T]]) -> T:
        """A read from PostgreSQL, retried while it is away (its restarts are faults)."""
        while True:
            try:
                return await query()
            except READ_AGAIN:
                await asyncio.sleep(RETRY)

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """One API call to the engine serving now; a 5xx raises, like a refused connection."""
        assert self._http is not None
        async with self._http.request(method, self.engines.base + path, json=body) as resp:
            if resp.status >= 500:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
            return resp.status, await resp.json()

    async def _api(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """An API call retried until an engine answers it: only for what runs before the
        first fault (the experts), where a lost answer means the call never arrived."""
        while True:
            try:
                return await self._request(method, path, body)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                if self.stopped.is_set():
                    raise
                await asyncio.sleep(RETRY)
