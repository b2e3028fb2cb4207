"""A closed AmiMonitor stops talking to Asterisk.

The tests run on one event loop for the whole session: an AMI client that goes on
reconnecting after its engine was closed keeps trying (and logging "Not able to reconnect"
every 2 s) through every later test. Each engine of the browser and integration tests has
its AMI on a port nobody listens on: their warnings filled the captured logs of any later
failing test until the close stopped panoramisk's already scheduled retry.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from ivr_engine.ami import AmiMonitor

RECONNECT_TIMEOUT = 2.0  # panoramisk's reconnect_timeout, as AmiMonitor sets it


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_closed_monitor_never_tries_to_connect_again() -> None:
    records = Records()
    logger = logging.getLogger("panoramisk.manager")
    previous = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    monitor = AmiMonitor("127.0.0.1", _dead_port(), "user", "secret", interval=1.0)
    try:
        await monitor.start()
        # The first try fails at once (nobody listens) and panoramisk schedules the next one.
        for _ in range(100):
            if "Not able to reconnect" in records.messages:
                break
            await asyncio.sleep(0.02)
        assert "Not able to reconnect" in records.messages, records.messages
        await monitor.close()
        tried = len(records.messages)
        await asyncio.sleep(RECONNECT_TIMEOUT + 0.5)
        assert records.messages[tried:] == []  # nothing tried after the close
    finally:
        await monitor.close()
        logger.removeHandler(records)
        logger.setLevel(previous)
