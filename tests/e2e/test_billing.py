"""A real bridged call is billed for the time Asterisk says the bridge lasted, and the
expert's earnings email arrives through a real SMTP server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ivr_devkit.simphones import PhoneBook, answer

from .conftest import Harness, observing, until

pytestmark = pytest.mark.e2e

EXPERT = "+393330000131"  # an Italian mobile number: 0.20 EUR/min transfer cost
CLIENT = "+393330000232"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_bridged_call_is_billed_and_expert_is_emailed(
    harness: Callable[..., Awaitable[Harness]],
    phones: PhoneBook,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, smtp_port = smtp
    await phones.phone(EXPERT, answer("1", dtmf_delay_ms=1000))
    await phones.phone(CLIENT, answer(hangup_after_ms=9000))
    h = await harness(smtp_port=smtp_port, mail_from="billing@ivr.test")
    async with observing(h.info) as observer:
        expert_id = await h.expert(EXPERT, rate="2.50")
        request_id = await h.request(expert_id, CLIENT)
        assert await h.wait_state(request_id, "completed", timeout=60) == "completed"
        await asyncio.wait_for(inbox.arrived.wait(), 30)
    assert len(observer.times("ChannelEnteredBridge")) == 2
    asterisk_seconds = observer.bridged_seconds()

    status, page = await h.api("GET", f"/api/v1/consultations?expert_id={expert_id}")
    assert status == 200 and len(page["items"]) == 1
    bill = page["items"][0]
    assert abs(bill["billed_seconds"] - asterisk_seconds) <= 1, (bill, asterisk_seconds)
    assert bill["rate_per_minute"] == "2.50" and bill["line_type"] == "mobile"
    status, same = await h.api("GET", f"/api/v1/consultations/{bill['id']}")
    assert status == 200 and same == bill
    # Figures reproducible from the stored inputs: 2.50 EUR/min for the charged seconds.
    from decimal import ROUND_HALF_UP, Decimal

    price = (Decimal("2.50") * bill["charged_seconds"] / 60).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    assert Decimal(bill["client_price"]) == price
    assert Decimal(bill["earnings"]) == (
        Decimal(bill["client_price"]) - Decimal(bill["transfer_cost"]) - Decimal(bill["commission"])
    )
    assert datetime.fromisoformat(bill["end"]) > datetime.fromisoformat(bill["start"])

    (mail,) = inbox.messages
    assert mail["To"] == "anna@example.org"
    body = mail.get_payload(decode=True).decode() if not mail.is_multipart() else str(mail)
    assert bill["earnings"] in body or bill["earnings"].replace(".", ",") in body
    # Marked sent once the SMTP server has acknowledged the message, after it arrived.
    sent = await until(
        lambda: h.pool.fetchval(
            "SELECT count(*) FROM outbox_emails WHERE kind = 'consultation_earnings'"
            " AND sent_at IS NOT NULL"
        ),
        lambda count: count >= 1,
    )
    assert sent == 1
