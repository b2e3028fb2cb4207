"""The simulated phones against each other on loopback: no Asterisk needed.

Each behaviour of a Phone (SIPp UAS) is driven by a SIPp UAC, the Caller or a small self-test
scenario, and the key presses are caught on a Python UDP socket that one side's SDP announces
as its RTP port.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr_devkit.simphones import (
    SCENARIOS,
    TELEPHONE_EVENT,
    Behaviour,
    Keys,
    Phone,
    PhoneBook,
    PhoneTimeout,
    SippProcess,
    answer,
    busy,
    free_udp_port,
    no_answer,
    reject,
)

pytestmark = pytest.mark.e2e

EVENT_NAMES = "0123456789*#ABCD"


@dataclass
class Press:
    digit: str
    timestamp: int
    first_seq: int
    arrived: float
    ended: bool = False


class RtpSink(asyncio.DatagramProtocol):
    """Collects what arrives on a UDP port, with the arrival time."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.packets.append((asyncio.get_running_loop().time(), data))

    def presses(self) -> list[Press]:
        """The key presses among the packets: one per (SSRC, RTP timestamp), as RFC 4733."""
        found: dict[tuple[int, int], Press] = {}
        for arrived, data in self.packets:
            if len(data) < 16 or data[1] & 0x7F != TELEPHONE_EVENT:
                continue
            _, _, seq, timestamp, ssrc = struct.unpack("!BBHII", data[:12])
            event, flags, _duration = struct.unpack("!BBH", data[12:16])
            press = found.setdefault(
                (ssrc, timestamp), Press(EVENT_NAMES[event], timestamp, seq, arrived)
            )
            press.ended = press.ended or bool(flags & 0x80)
        return list(found.values())


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[PhoneBook]:
    book = PhoneBook(tmp_path / "phones")
    try:
        yield book
    finally:
        await book.aclose()
        assert book.running() == [], "a SIPp process outlived its test"


@pytest.fixture
async def sink() -> AsyncIterator[tuple[int, RtpSink]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
    try:
        yield transport.get_extra_info("sockname")[1], protocol
    finally:
        transport.close()


def direct(phone: Phone) -> str:
    """Where a Caller reaches the phone itself, as if it were Asterisk."""
    return f"127.0.0.1:{phone.port}"


def uac(book: PhoneBook, scenario: str, phone_port: int, *extra: str) -> SippProcess:
    return SippProcess(
        f"uac-{scenario}",
        SCENARIOS / f"{scenario}.xml",
        workdir=book.workdir,
        port=free_udp_port(),
        media_port=free_udp_port(span=4),
        remote=f"127.0.0.1:{phone_port}",
        timeout_s=20,
        extra_args=["-s", "selftest", *extra],
    )


async def test_answer_presses_keys_then_far_end_hangs_up(
    book: PhoneBook, sink: tuple[int, RtpSink]
) -> None:
    port, rtp = sink
    phone = await book.phone("+3901", answer("51", dtmf_delay_ms=200, digit_gap_ms=300))
    caller = await book.call(
        "+3901", target=direct(phone), hangup_after_ms=1200, announce_media_port=port
    )

    result = await phone.finished(timeout=10)
    assert result.ok, result
    assert result.received == ["INVITE", "ACK", "BYE"], result
    assert result.sent == ["100", "200", "200"], result
    assert (await caller.finished(timeout=5)).ok
    assert phone.invites_received() == 1

    presses = rtp.presses()
    assert [p.digit for p in presses] == ["5", "1"]
    assert all(p.ended for p in presses)
    # One stream going forward, so that a receiver takes the second press as a new one.
    assert presses[1].timestamp > presses[0].timestamp
    assert presses[1].first_seq == presses[0].first_seq + 10
    assert presses[1].arrived - presses[0].arrived == pytest.approx(0.3, abs=0.1)


async def test_far_end_hangs_up_before_the_keys(book: PhoneBook, sink: tuple[int, RtpSink]) -> None:
    port, rtp = sink
    phone = await book.phone("+3902", answer("1", dtmf_delay_ms=5000))
    await book.call("+3902", target=direct(phone), hangup_after_ms=200, announce_media_port=port)

    result = await phone.finished(timeout=3)  # well before the 5 s wait for the key is over
    assert result.ok, result
    assert result.received == ["INVITE", "ACK", "BYE"], result
    assert rtp.presses() == []


async def test_phone_hangs_up_and_caller_presses_keys(
    book: PhoneBook, sink: tuple[int, RtpSink]
) -> None:
    port, rtp = sink
    phone = await book.phone("+3903", answer(hangup_after_ms=1800), announce_media_port=port)
    keys = [Keys("1", after_ms=100), Keys("1234#", after_ms=300, gap_ms=200)]
    caller = await book.call("+3903", target=direct(phone), from_number="+3999", keys=keys)

    result = await phone.finished(timeout=10)
    assert result.ok, result
    assert result.received == ["INVITE", "ACK", "200"], result
    assert result.sent == ["100", "200", "BYE"], result
    called = await caller.finished(timeout=5)
    assert called.ok, called
    assert called.received == ["100", "200", "BYE"], called
    assert "From: <sip:+3999@127.0.0.1" in called.log

    presses = rtp.presses()
    # "1" twice in a row stays two presses: each has its own timestamp.
    assert "".join(p.digit for p in presses) == "11234#"
    assert all(p.ended for p in presses)


async def test_phone_takes_several_calls_one_after_the_other(book: PhoneBook) -> None:
    phone = await book.phone("+3904", answer(hangup_after_ms=100), calls=2)
    first = await book.call("+3904", target=direct(phone))
    assert (await first.finished(timeout=5)).ok
    second = await book.call("+3904", target=direct(phone))
    assert (await second.finished(timeout=5)).ok

    result = await phone.finished(timeout=5)
    assert result.ok and result.successful == 2, result
    assert phone.invites_received() == 2


@pytest.mark.parametrize(("behaviour", "status"), [(busy(), "486"), (reject(), "603")])
async def test_refusing_phone(book: PhoneBook, behaviour: Behaviour, status: str) -> None:
    phone = await book.phone("+3905", behaviour)
    caller = uac(book, "selftest_refused", phone.port)
    await caller.start()

    result = await phone.finished(timeout=5)
    assert result.ok, result
    assert result.received == ["INVITE", "ACK"], result
    assert result.sent == ["100", status], result
    called = await caller.finished(timeout=5)
    assert called.ok and called.received == ["100", status], called


async def test_replaced_phone_answers_on_the_same_port(book: PhoneBook) -> None:
    first = await book.phone("+3908", busy())
    routes = book.routes()
    refused = uac(book, "selftest_refused", first.port)
    await refused.start()
    assert "486" in (await first.finished(timeout=5)).sent
    assert (await refused.finished(timeout=5)).ok

    second = await book.replace("+3908", answer(hangup_after_ms=100))
    assert second.port == first.port and book.routes() == routes
    caller = await book.call("+3908", target=direct(second))
    assert (await second.finished(timeout=5)).ok
    assert (await caller.finished(timeout=5)).ok


async def test_unanswered_phone_rings_until_cancelled(book: PhoneBook) -> None:
    phone = await book.phone("+3906", no_answer())
    caller = uac(book, "selftest_cancel", phone.port, "-d", "2000")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await caller.start()
    await phone.wait_received("INVITE", timeout=5)

    result = await phone.finished(timeout=10)
    assert loop.time() - started >= 1.9
    assert result.ok, result
    assert result.received == ["INVITE", "CANCEL", "ACK"], result
    assert result.sent == ["100", "180", "200", "487"], result
    called = await caller.finished(timeout=5)
    assert called.ok and called.received == ["100", "180", "200", "487"], called


async def test_stop_ends_a_phone_nobody_called(book: PhoneBook) -> None:
    phone = await book.phone("+3907", answer("1"))
    assert book.routes() == {
        "*": "PJSIP/phone-network/sip:{number}@127.0.0.1:9",
        "+3907": f"PJSIP/phone-network/sip:+3907@127.0.0.1:{phone.port}",
    }
    with pytest.raises(PhoneTimeout):
        await phone.finished(timeout=0.3)
    assert book.running() == [phone.pid]
    assert phone.invites_received() == 0

    await phone.stop()
    await phone.stop()
    assert book.running() == []
