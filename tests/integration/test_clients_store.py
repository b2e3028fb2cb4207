"""The expert's clients on a real PostgreSQL: everything is scoped by expert, and a message
to a client is really delivered by the outbox sender to an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from collections.abc import Callable

import asyncpg
import pytest

from ivr_engine.mail import OutboxSender
from ivr_engine.store import clients
from tests.integration.test_mail_sender import SmtpServer, senders, smtp

pytestmark = pytest.mark.integration
__all__ = ["senders", "smtp"]  # fixtures, shared with the outbox sender's own tests


async def setup(pool: asyncpg.Pool, *, email: str = "marco@example.org") -> tuple[int, int, int]:
    """Anna and Bruno (two experts) and Marco, who asked only Anna for a consultation."""
    anna, bruno = [
        await pool.fetchval(
            "INSERT INTO experts (alias, phone, rate_per_minute) VALUES ($1, $2, 1.50)"
            " RETURNING id",
            alias,
            phone,
        )
        for alias, phone in (("Tarot Anna", "+390600000601"), ("Bruno", "+390600000602"))
    ]
    marco = await pool.fetchval(
        "INSERT INTO clients (alias, phone, email, language) VALUES ('Marco', '+393330000611',"
        " $1, 'it') RETURNING id",
        email,
    )
    await pool.execute("INSERT INTO requests (expert_id, client_id) VALUES ($1, $2)", anna, marco)
    return anna, bruno, marco


async def test_only_the_experts_own_clients(pool: asyncpg.Pool) -> None:
    anna, bruno, marco = await setup(pool)
    summary = await clients.summary(pool, anna, marco)
    assert summary is not None and summary.alias == "Marco" and summary.consultations == 0
    assert await clients.summary(pool, bruno, marco) is None
    assert await clients.summary(pool, anna, marco + 1) is None

    assert await clients.add_note(pool, bruno, marco, "not mine") is None
    assert await clients.send_message(pool, bruno, marco, "not mine") is None
    note = await clients.add_note(pool, anna, marco, "Prefers evenings.")
    assert [n.id for n in await clients.notes(pool, anna, marco)] == [note]
    assert await clients.notes(pool, bruno, marco) == []
    assert await pool.fetchval("SELECT count(*) FROM client_messages") == 0


async def test_no_email_address_stores_nothing(pool: asyncpg.Pool) -> None:
    anna, _bruno, marco = await setup(pool, email="")
    assert await clients.send_message(pool, anna, marco, "Hello?") is None
    assert await pool.fetchval("SELECT count(*) FROM client_messages") == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox_emails") == 0


async def test_message_is_delivered_to_the_client_by_smtp(
    pool: asyncpg.Pool, smtp: Callable[..., SmtpServer], senders: Callable[..., OutboxSender]
) -> None:
    anna, _bruno, marco = await setup(pool)
    server = await smtp().start()
    sender = senders(server.port)
    text = "Ciao Marco,\ncom'è andato il colloquio? {Chiamami} quando vuoi."
    message_id = await clients.send_message(pool, anna, marco, text)
    assert message_id is not None
    [entry] = await clients.messages(pool, anna, marco)
    assert (entry.id, entry.body, entry.delivery) == (message_id, text, "queued")
    sender.poke()

    [email] = await server.inbox.wait_for(1)
    assert server.inbox.received[0].rcpt_tos == ["marco@example.org"]
    assert email["Subject"] == "Un messaggio da Tarot Anna"
    assert email["Content-Language"] == "it"
    body = email.get_content()
    assert "Ciao Marco" in body and "Tarot Anna ti ha scritto:" in body
    assert "> Ciao Marco,\n> com'è andato il colloquio? {Chiamami} quando vuoi.\n" in body

    await sender.flush(5)
    row = await pool.fetchrow("SELECT * FROM outbox_emails WHERE message_id = $1", message_id)
    assert row["kind"] == "client_message" and row["sent_at"] is not None
    assert json.loads(row["payload"])["message"] == text
    [entry] = await clients.messages(pool, anna, marco)
    assert entry.delivery == "sent"
