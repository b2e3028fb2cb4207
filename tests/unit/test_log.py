"""Every log line is structlog's: the libraries' records too, tracebacks included."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from ivr_engine import log


@pytest.fixture
def json_log(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """stderr captured; the test configures logging (so the handler writes to the capture)
    and the root logger is given back as it was."""
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        yield capsys
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])
        structlog.reset_defaults()


def test_a_library_traceback_is_one_json_line(json_log: pytest.CaptureFixture[str]) -> None:
    log.configure("json", "info")
    try:
        raise ConnectionRefusedError("127.0.0.1:5038")
    except OSError:
        logging.getLogger("panoramisk.manager").exception("Not able to connect")
    logging.getLogger("asyncpg.pool").debug("below the level: dropped")
    structlog.get_logger("ivr").info("engine.event", request_id=7)
    lines = json_log.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert len(records) == 2
    library, ours = records
    assert library["event"] == "Not able to connect"
    assert library["logger"] == "panoramisk.manager" and library["level"] == "error"
    assert "ConnectionRefusedError: 127.0.0.1:5038" in library["exception"]
    assert library["timestamp"].endswith("Z")
    assert ours["event"] == "engine.event" and ours["request_id"] == 7


def test_configuring_twice_keeps_one_handler(json_log: pytest.CaptureFixture[str]) -> None:
    log.configure("json", "info")
    log.configure("json", "warning")
    logging.getLogger("aiohttp.server").warning("twice?")
    assert len(json_log.readouterr().err.splitlines()) == 1
