"""The API fuzzed: schemathesis reads the engine's own OpenAPI document and sends every
operation requests that fit it and requests that do not (wrong types, missing fields, huge
numbers, odd strings), to a live engine on a real PostgreSQL with Asterisk away. No answer
may be a 5xx, every answer must fit the document (status code, content type, schema), and
input that breaks the document must be refused with a 4xx. (Input that fits it may still be
refused: the rules of rates, numbers and plannings are more than a JSON schema can say.)

The engine runs on its own event loop in a thread: schemathesis calls it with blocking
``requests``. The examples are derandomized, so every run (and CI) sends the same ones;
``EXAMPLES`` bound the time (about 20 s here); the bugs it once found are pinned by
test_openapi.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ivr_engine.engine import Engine
from ivr_engine.store import people
from ivr_engine.web.api.openapi import document
from tests.conftest import asterisk_away

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token"
# Examples per operation: those with a body have the most to get wrong.
EXAMPLES_WITH_BODY, EXAMPLES = 100, 20


class EngineThread:
    """An engine serving HTTP from its own event loop, in a thread of its own."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = Engine(asterisk_away(dsn, TOKEN))
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-engine")

    def __enter__(self) -> EngineThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        await self.engine.start()
        # Something for the fuzzer to find: ids 1 exist (an expert, a client, a request).
        expert = await people.create_expert(
            self.engine.pool, alias="Anna", phone="+390600000101", rate=Decimal("1.50")
        )
        client = await people.client_by_phone(self.engine.pool, "+393330000201")
        await self.engine.actions.join(expert, client)

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.engine.close(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.engine.http_port}"


@pytest.fixture
def live(dsn: str) -> Iterator[EngineThread]:
    with EngineThread(dsn) as served:
        yield served


def test_no_answer_is_a_server_error_or_breaks_the_document(live: EngineThread) -> None:
    schema = schemathesis.openapi.from_dict(document(live.base))
    schema.config.update(base_url=live.base)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 18, [op.label for op in operations]
    tried: dict[str, set[int]] = {}

    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(
            max_examples=EXAMPLES_WITH_BODY if operation.body else EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            # Data that fits the document may still break a rule it cannot say (a rate out of
            # the configured bounds, a number nobody may dial): a documented 422, not a bug.
            response = case.call_and_validate(
                headers=auth, excluded_checks=[positive_data_acceptance]
            )
            tried.setdefault(case.operation.label, set()).add(response.status_code)

        fuzz()

    # Every operation was reached, and the fuzzer did get past validation somewhere.
    assert set(tried) == {op.label for op in operations}
    statuses = set().union(*tried.values())
    assert any(200 <= code < 300 for code in statuses), tried
    assert {400, 404, 422} <= statuses, tried
    assert max(statuses) < 500, tried
