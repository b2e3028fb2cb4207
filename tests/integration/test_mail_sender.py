"""The outbox sender against a real PostgreSQL and a real SMTP server (aiosmtpd on loopback).

The SMTP server runs in its own thread; its handler hands every message to the test's loop,
so tests wait for "a message arrived" or "a sender pass ended" — never for a duration.
"""

from __future__ import annotations

import asyncio
import email.policy
import json
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ivr_engine.mail import (
    LinkExpired,
    OutboxConfig,
    OutboxSender,
    SmtpConfig,
    backoff_delay,
    verify_solicit,
)
from tests.unit.test_mail_templates import EARNINGS as TEMPLATE_EARNINGS

pytestmark = pytest.mark.integration

SECRET = b"test-link-secret"
PUBLIC_URL = "https://experts.example.org"
# The template tests' payload, with no note: the sender's tests read the body's figures.
EARNINGS: dict[str, Any] = {**TEMPLATE_EARNINGS, "note": ""}


# -- a real SMTP server ----------------------------------------------------------------------
@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    at: float  # the test loop's clock
    peer: tuple[str, int]  # the client's end of the connection that carried it


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.received: list[Received] = []
        self._arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # SMTP carries CRLF; a mail reader shows plain lines.
        raw = envelope.content.replace(b"\r\n", b"\n")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        item = (envelope.mail_from, list(envelope.rcpt_tos), message, tuple(session.peer))
        # Queued on the test's loop before the 250 reaches the client: by the time the
        # sender sees the message accepted, the test can see it too.
        self.loop.call_soon_threadsafe(self._append, *item)
        return "250 OK"

    def _append(
        self, mail_from: str, rcpt_tos: list[str], message: EmailMessage, peer: tuple[str, int]
    ) -> None:
        self.received.append(Received(mail_from, rcpt_tos, message, self.loop.time(), peer))
        self._arrived.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        await self.wait_until(lambda got: len(got) >= count, timeout)
        return [r.message for r in self.received]

    async def wait_until(
        self, condition: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while not condition(self.received):
                self._arrived.clear()
                await self._arrived.wait()


class ClosingAfterOne(Inbox):
    """Answers 421 (closing) to the second email of a connection, as a relay whose limit
    of emails per connection, or idle timeout, has run out."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.refused = 0

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        count = getattr(session, "emails", 0) + 1
        session.emails = count
        if count > 1:
            self.refused += 1
            return "421 too many messages on this connection, closing"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int, inbox: type[Inbox] = Inbox, **controller_options: Any) -> None:
        self.port = port
        self.inbox = inbox(asyncio.get_running_loop())
        self._controller = Controller(
            self.inbox, hostname="127.0.0.1", port=port, **controller_options
        )
        self._running = False

    async def start(self) -> SmtpServer:
        await asyncio.to_thread(self._controller.start)
        self._running = True
        return self

    async def stop(self) -> None:
        if self._running:
            self._running = False
            await asyncio.to_thread(self._controller.stop)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def smtp() -> AsyncIterator[Callable[..., SmtpServer]]:
    """Factory of SMTP servers (not yet started); every one is stopped at the end."""
    servers: list[SmtpServer] = []

    def make(port: int | None = None, inbox: type[Inbox] = Inbox, **options: Any) -> SmtpServer:
        server = SmtpServer(port or free_port(), inbox, **options)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            await server.stop()


@pytest.fixture
async def senders(pool: asyncpg.Pool) -> AsyncIterator[Callable[..., OutboxSender]]:
    """Factory of started senders; every one is closed (twice, to prove it is safe)."""
    made: list[OutboxSender] = []

    def make(
        port: int, cls: type[OutboxSender] = OutboxSender, smtp: SmtpConfig | None = None, **kw: Any
    ) -> OutboxSender:
        options: dict[str, Any] = {
            "send_timeout": 3.0,
            "db_timeout": 3.0,
            "lease": 10.0,
            "backoff_base": 0.5,
            "backoff_cap": 2.0,
            "link_ttl": 600.0,
            "wake_coalesce": 0.0,  # the tests' timings count from the poke
            **kw,
        }
        config = OutboxConfig(
            smtp=smtp or SmtpConfig(port=port, timeout=2.0),
            mail_from="Expert line <noreply@experts.example.org>",
            public_url=PUBLIC_URL,
            link_secret=SECRET,
            **options,
        )
        sender = cls(pool, config)
        sender.start()
        made.append(sender)
        return sender

    try:
        yield make
    finally:
        for sender in made:
            await sender.close()
            await sender.close()


async def add_row(
    pool: asyncpg.Pool,
    kind: str,
    payload: dict[str, Any],
    *,
    to: str = "anna@example.org",
    language: str = "en",
    request_id: int | None = None,
) -> int:
    return int(
        await pool.fetchval(
            "INSERT INTO outbox_emails (kind, request_id, to_address, payload, language)"
            " VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id",
            kind,
            request_id,
            to,
            json.dumps(payload),
            language,
        )
    )


async def row_state(pool: asyncpg.Pool, row_id: int) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT sent_at, failed_at, attempts, last_error,"
        " EXTRACT(EPOCH FROM next_try_at - clock_timestamp())::float8 AS due_in"
        " FROM outbox_emails WHERE id = $1",
        row_id,
    )


# -- the tests -------------------------------------------------------------------------------
async def test_earnings_email_is_sent_once_and_marked(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    server = await smtp().start()
    sender = senders(server.port)
    row = await add_row(pool, "consultation_earnings", EARNINGS, language="it")
    sender.poke()

    [message] = await server.inbox.wait_for(1)
    assert server.inbox.received[0].mail_from == "noreply@experts.example.org"
    assert server.inbox.received[0].rcpt_tos == ["anna@example.org"]
    assert message["Subject"] == "Il tuo guadagno per il consulto con Marco: 3,13 €"
    assert message["Message-ID"] == f"<outbox-{row}@experts.example.org>"
    assert message["From"] == "Expert line <noreply@experts.example.org>"
    assert message["Date"] is not None and message["Auto-Submitted"] == "auto-generated"
    # aiosmtpd announces 8BITMIME: the text goes as it is, not quoted-printable.
    assert message["Content-Transfer-Encoding"] == "8bit"
    body = message.get_content()
    for amount in ("3,13 €", "4,50 €", "0,60 €", "0,77 €", "1,50 €/min", "180 s (3 min)"):
        assert amount in body, amount

    await sender.flush(5)
    state = await row_state(pool, row)
    assert state["sent_at"] is not None and state["failed_at"] is None
    assert state["attempts"] == 1 and state["last_error"] == ""

    await sender.flush(5)  # nothing is due any more
    assert len(server.inbox.received) == 1


async def test_server_down_then_up_delivers_exactly_once(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    port = free_port()  # nobody listens yet
    sender = senders(port, backoff_base=1.0, backoff_cap=2.0)
    row = await add_row(pool, "consultation_earnings", EARNINGS)
    with structlog.testing.capture_logs() as logs:
        await sender.flush(10)
    state = await row_state(pool, row)
    assert state["attempts"] == 1 and state["sent_at"] is None and state["failed_at"] is None
    assert f"127.0.0.1:{port}" in state["last_error"]
    assert 0 < state["due_in"] <= 1.0  # backoff_base, not the lease
    assert any(e["event"] == "outbox.retry_later" for e in logs)

    server = await smtp(port).start()
    # No poke: the sender wakes by itself at next_try_at (its idle poll is 30 s).
    [message] = await server.inbox.wait_for(1, timeout=10)
    assert message["Subject"] == "Your earnings for the consultation with Marco: €3.13"
    assert "€3.13" in message.get_content()
    await sender.flush(5)
    state = await row_state(pool, row)
    assert state["sent_at"] is not None and state["attempts"] >= 2
    assert len(server.inbox.received) == 1


class CrashBeforeMark(OutboxSender):
    """Dies, as far as PostgreSQL can tell, between the SMTP accept and the mark."""

    async def _mark_sent(self, row: Any) -> None:
        raise OSError("simulated crash between the SMTP accept and the mark")


async def test_crash_between_send_and_mark_resends_with_same_message_id(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    server = await smtp().start()
    lease = {"lease": 2.5, "send_timeout": 1.0, "db_timeout": 1.0}
    doomed = senders(server.port, cls=CrashBeforeMark, **lease)
    row = await add_row(pool, "consultation_earnings", EARNINGS)
    doomed.poke()
    await server.inbox.wait_for(1)
    await doomed.flush(5)
    await doomed.close()  # the "dead" process
    assert (await row_state(pool, row))["sent_at"] is None

    heir = senders(server.port, **lease)  # the restarted engine
    first, second = await server.inbox.wait_for(2, timeout=10)
    assert first["Message-ID"] == second["Message-ID"] == f"<outbox-{row}@experts.example.org>"
    # The heir waited for the lease: it did not take the row while it might be in flight.
    gap = server.inbox.received[1].at - server.inbox.received[0].at
    assert gap >= 2.0, gap
    await heir.flush(5)
    state = await row_state(pool, row)
    assert state["sent_at"] is not None and state["attempts"] == 2
    assert len(server.inbox.received) == 2


async def test_missed_call_email_carries_a_verifiable_link(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    expert = await pool.fetchval(
        "INSERT INTO experts (alias, phone, rate_per_minute, email, language)"
        " VALUES ('Tarot Anna', '+3906000101', 1.50, 'anna@example.org', 'it') RETURNING id"
    )
    client = await pool.fetchval(
        "INSERT INTO clients (alias, phone) VALUES ('Marco', '+3933300001') RETURNING id"
    )
    request_id = await pool.fetchval(
        "INSERT INTO requests (expert_id, client_id) VALUES ($1, $2) RETURNING id", expert, client
    )
    payload = {"request_id": request_id, "client_alias": "Marco", "attempt": 1, "reason": "busy"}
    server = await smtp().start()
    sender = senders(server.port, link_ttl=600.0)
    await add_row(pool, "expert_missed_call", payload, language="it", request_id=request_id)
    sender.poke()

    [message] = await server.inbox.wait_for(1)
    assert message["Subject"] == "Hai perso una chiamata di Marco"
    assert message["Content-Language"] == "it"
    body = message.get_content()
    found = re.search(rf"^{re.escape(PUBLIC_URL)}/solicit/(\d+)\?token=(\S+)$", body, re.M)
    assert found is not None, body
    assert int(found[1]) == request_id
    now = datetime.now(UTC)
    verify_solicit(request_id, found[2], SECRET, now)
    with pytest.raises(LinkExpired):
        verify_solicit(request_id, found[2], SECRET, now + timedelta(seconds=601))


async def test_empty_address_fails_at_once(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    server = await smtp().start()
    sender = senders(server.port)
    row = await add_row(pool, "consultation_earnings", EARNINGS, to="")
    with structlog.testing.capture_logs() as logs:
        await sender.flush(5)
    state = await row_state(pool, row)
    assert state["failed_at"] is not None and state["sent_at"] is None
    assert state["attempts"] == 1 and "no valid recipient address" in state["last_error"]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["outbox.gave_up"]
    await sender.flush(5)
    assert (await row_state(pool, row))["attempts"] == 1  # never claimed again
    assert server.inbox.received == []


async def test_gives_up_after_max_attempts_with_growing_backoff(
    pool: asyncpg.Pool, senders: Callable[..., OutboxSender]
) -> None:
    # Long delays: the sender never retries by itself here; the test makes the row due.
    sender = senders(free_port(), backoff_base=100.0, backoff_cap=150.0, max_attempts=3)
    row = await add_row(pool, "consultation_earnings", EARNINGS)
    waits = []
    for _ in range(3):
        await sender.flush(10)
        state = await row_state(pool, row)
        waits.append(round(state["due_in"], -1))
        await pool.execute("UPDATE outbox_emails SET next_try_at = now() WHERE id = $1", row)
    assert waits[:2] == [100.0, 150.0]  # base, then capped (200 > 150)
    state = await row_state(pool, row)
    assert state["attempts"] == 3 and state["failed_at"] is not None
    await sender.flush(10)
    assert (await row_state(pool, row))["attempts"] == 3


async def test_bad_payload_fails_at_once(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    server = await smtp().start()
    sender = senders(server.port)
    unknown = await add_row(pool, "newsletter", {})
    missing = await add_row(pool, "expert_missed_request_lost", {"attempt": 3})
    await sender.flush(5)
    for row, error in ((unknown, "no template"), (missing, "no 'client_alias'")):
        state = await row_state(pool, row)
        assert state["failed_at"] is not None and error in state["last_error"]
    assert server.inbox.received == []


async def test_a_message_that_cannot_be_built_fails_at_once_with_the_reason(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    """A client alias with a line break (stored before aliases were checked) would forge a
    header: the email is never built, and it is not retried eight times either."""
    server = await smtp().start()
    sender = senders(server.port, max_attempts=8)
    forged = {**EARNINGS, "client_alias": "Marco\r\nBcc: everyone@example.org"}
    row = await add_row(pool, "consultation_earnings", forged)
    fine = await add_row(pool, "consultation_earnings", EARNINGS)
    await sender.flush(5)
    state = await row_state(pool, row)
    assert state["failed_at"] is not None and state["attempts"] == 1
    assert "control characters (U+000A, U+000D)" in state["last_error"]
    (delivered,) = await server.inbox.wait_for(1)
    assert (await row_state(pool, fine))["sent_at"] is not None
    assert "Bcc" not in delivered and delivered["To"] == "anna@example.org"


async def test_close_as_the_server_accepts_never_hangs(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    """Regression: on Python 3.11 aiosmtplib's wait_for could swallow the cancellation of a
    close() landing with the server's reply, and the sender kept running for ever.

    A close during a send may leave the message accepted but unmarked: the next sender
    sends it again, with the same Message-ID. Nothing is lost, nothing hangs.
    """
    server = await smtp().start()
    timing = {"lease": 2.5, "send_timeout": 1.0, "db_timeout": 1.0}
    rows = []
    for _ in range(10):
        sender = senders(server.port, **timing)
        rows.append(await add_row(pool, "consultation_earnings", EARNINGS))
        before = len(server.inbox.received)
        sender.poke()
        await server.inbox.wait_for(before + 1)
        async with asyncio.timeout(5):
            await sender.close()
    expected = {f"<outbox-{row}@experts.example.org>" for row in rows}

    last = senders(server.port, **timing)
    await server.inbox.wait_until(
        lambda got: {r.message["Message-ID"] for r in got} >= expected, timeout=10
    )
    await last.flush(5)
    assert {r.message["Message-ID"] for r in server.inbox.received} == expected
    unsent = await pool.fetchval("SELECT count(*) FROM outbox_emails WHERE sent_at IS NULL")
    assert unsent == 0


async def test_emails_in_a_row_share_one_connection_closed_when_idle(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    server = await smtp().start()
    sender = senders(server.port, session_idle=0.5, session_max_emails=3, wake_coalesce=0.2)
    rows = [await add_row(pool, "consultation_earnings", EARNINGS) for _ in range(4)]
    sender.poke()
    await server.inbox.wait_for(4)
    peers = [r.peer for r in server.inbox.received]
    # Three on the first connection, then a new one (session_max_emails).
    assert peers[0] == peers[1] == peers[2] != peers[3], peers
    await sender.flush(5)
    for row in rows:
        state = await row_state(pool, row)
        assert state["sent_at"] is not None and state["attempts"] == 1

    await asyncio.sleep(0.8)  # longer than session_idle: the session was closed
    await add_row(pool, "consultation_earnings", EARNINGS)
    sender.poke()
    await server.inbox.wait_for(5)
    assert server.inbox.received[4].peer != peers[3]


async def test_a_connection_the_server_closes_is_replaced_without_losing_the_email(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    server = await smtp(inbox=ClosingAfterOne).start()
    sender = senders(server.port, session_idle=30.0)
    first = await add_row(pool, "consultation_earnings", EARNINGS)
    sender.poke()
    await server.inbox.wait_for(1)
    await sender.flush(5)
    second = await add_row(pool, "consultation_earnings", EARNINGS, language="it")
    with structlog.testing.capture_logs() as logs:
        sender.poke()
        await server.inbox.wait_for(2)
        await sender.flush(5)
    inbox = server.inbox
    assert isinstance(inbox, ClosingAfterOne) and inbox.refused == 1
    assert inbox.received[0].peer != inbox.received[1].peer
    assert [r.message["Message-ID"] for r in inbox.received] == [
        f"<outbox-{row}@experts.example.org>" for row in (first, second)
    ]
    for row in (first, second):
        state = await row_state(pool, row)
        assert state["sent_at"] is not None and state["attempts"] == 1
    assert [e["event"] for e in logs if e["log_level"] != "info"] == []


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, 5.0, 600.0) for n in range(1, 10)] == [
        5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0,
    ]  # fmt: skip
    assert backoff_delay(10_000, 5.0, 600.0) == 600.0


# -- TLS and login ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for 127.0.0.1 (the sender trusts it through ca_file)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    yield cert, key


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"anna",
        b"s3cret",
    )
    return AuthResult(success=ok, handled=False)


# aiosmtpd warns whenever auth_require_tls is off, even on an implicit-TLS listener.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_tls_modes_with_login(
    mode: str,
    certificate: tuple[Path, Path],
    pool: asyncpg.Pool,
    smtp: Callable[..., SmtpServer],
    senders: Callable[..., OutboxSender],
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    common = {"authenticator": _authenticator, "auth_required": True}
    if mode == "starttls":
        server = smtp(tls_context=context, require_starttls=True, **common)
    else:  # implicit TLS: aiosmtpd only counts STARTTLS as encryption, hence the flag
        server = smtp(ssl_context=context, auth_require_tls=False, **common)
    await server.start()
    config = SmtpConfig(
        port=server.port,
        tls=mode,  # type: ignore[arg-type]
        user="anna",
        password="s3cret",
        timeout=2.0,
        ca_file=str(certificate[0]),
    )
    sender = senders(server.port, smtp=config)
    await add_row(pool, "consultation_earnings", EARNINGS)
    sender.poke()
    [message] = await server.inbox.wait_for(1)
    assert "€3.13" in message.get_content()


async def test_wrong_password_is_retried_not_lost(
    certificate: tuple[Path, Path],
    pool: asyncpg.Pool,
    smtp: Callable[..., SmtpServer],
    senders: Callable[..., OutboxSender],
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    server = smtp(tls_context=context, authenticator=_authenticator, auth_required=True)
    await server.start()
    config = SmtpConfig(
        port=server.port, tls="starttls", user="anna", password="wrong", timeout=2.0,
        ca_file=str(certificate[0]),
    )  # fmt: skip
    sender = senders(server.port, smtp=config)
    row = await add_row(pool, "consultation_earnings", EARNINGS)
    await sender.flush(10)
    state = await row_state(pool, row)
    assert state["attempts"] == 1 and state["failed_at"] is None and "535" in state["last_error"]
    assert server.inbox.received == []
