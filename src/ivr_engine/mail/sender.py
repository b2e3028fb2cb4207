"""The outbox sender: delivers the rows of ``outbox_emails`` by SMTP, retrying with backoff.

The store writes a row in the same transaction as the business event (a trigger then
notifies ``ivr_outbox``, which pokes the sender); this module only claims, sends and marks
rows. Its settings and retry arithmetic are in ``mail.config``.

Claiming. One statement takes the oldest due row (``FOR UPDATE SKIP LOCKED``), counts the
attempt and sets ``next_try_at = now() + lease``. The lease keeps a second sender, or this one
after a restart, off the row while it is being sent; it outlasts the send and the mark.

Delivery is at-least-once. If the process dies, or PostgreSQL goes away, after the SMTP server
accepted a message but before ``sent_at`` is written, the row is sent again when its lease
ends. Every send of a row carries the same ``Message-ID: <outbox-{id}@{domain of mail_from}>``,
so the duplicate is recognisable (many mail stores drop it). A ``close()`` that cuts a send
short gives the row back at once (accepted or not, nobody knows): the next start sends it.
Exactly-once would need one transaction spanning PostgreSQL and the SMTP server; a
recognisable duplicate is better than a lost earnings notice.

Sessions. Emails go over one SMTP connection kept open while they keep coming (mail.session:
closed after ``session_idle`` quiet seconds, ``session_max_emails`` emails, or any error; a
connection the server dropped meanwhile is replaced and the email sent again at once).

Failures. The error is kept in ``last_error`` and the row waits
``min(cap, base * 2**(attempts - 1))``; after ``max_attempts`` it gets ``failed_at`` and an
error is logged. A row that can never be sent (no valid address, unknown kind, payload
missing a field, a subject with a line break, anything else that stops the message from
being built) fails at once, the reason in ``last_error``.

Waking: ``poke()`` when a row is written (the engine subscribes it to ``ivr_outbox``), else
at the earliest ``next_try_at`` (computed by PostgreSQL, so the two clocks never disagree),
else every ``idle_poll`` seconds. After a poke the sender waits ``wake_coalesce`` seconds
before looking, so that the emails of a busy second go out in one pass: a pass costs a
claim per email plus one that finds nothing (and reads the next due time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parseaddr
from typing import Any

import asyncpg
import structlog

from ivr_engine.domain.text import control_characters
from ivr_engine.errors import MailError, TemplateError, Undeliverable
from ivr_engine.mail.config import OutboxConfig, backoff_delay
from ivr_engine.mail.links import sign_solicit, solicit_url
from ivr_engine.mail.session import SmtpSession
from ivr_engine.mail.templates import LANGUAGES, render
from ivr_engine.mail.wire import Outgoing, header, recipient_of

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Row:
    id: int
    kind: str
    request_id: int | None
    to_address: str
    payload: Any
    language: str
    attempts: int


# One row always: the claimed email's columns, or NULLs and the seconds until the next
# row is due (NULL when none waits), which saves the pass a statement of its own.
_CLAIM_SQL = """
WITH due AS (
    SELECT id FROM outbox_emails
    WHERE sent_at IS NULL AND failed_at IS NULL AND next_try_at <= now()
    ORDER BY next_try_at, id LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE outbox_emails o
    SET attempts = o.attempts + 1, next_try_at = now() + make_interval(secs => $1)
    FROM due WHERE o.id = due.id
    RETURNING o.id, o.kind, o.request_id, o.to_address, o.payload, o.language, o.attempts
)
SELECT c.*, CASE WHEN c.id IS NULL THEN (
    SELECT EXTRACT(EPOCH FROM min(next_try_at) - clock_timestamp())::float8
    FROM outbox_emails WHERE sent_at IS NULL AND failed_at IS NULL
) END AS next_due
FROM (VALUES (1)) AS one (x) LEFT JOIN claimed c ON true
"""
_STORE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class OutboxSender:
    """Owns one task that sends due outbox rows; ``close()`` may be called any number of times."""

    def __init__(self, pool: asyncpg.Pool, config: OutboxConfig) -> None:
        self._pool = pool
        self.config = config
        self._envelope_from = parseaddr(config.mail_from)[1]
        self._domain = self._envelope_from.rpartition("@")[2]
        self._from_header = header("From", config.mail_from)
        self._session = SmtpSession(config)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._passes_started = 0
        self._passes_done = 0
        self._pass_done = asyncio.Condition()

    def start(self) -> None:
        if self._closing:
            raise MailError("the outbox sender is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-sender")

    def poke(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Bounded: a cancelled send only finishes its bookkeeping (db_timeout).
            await asyncio.gather(task, return_exceptions=True)

    async def flush(self, timeout: float) -> None:
        """Wake the sender and return once a pass that began after this call has ended.

        Every row due at the call has then been tried (sent, rescheduled or failed).
        """
        if self._task is None or self._task.done():
            raise MailError("the outbox sender is not running")
        goal = self._passes_started + 1
        self.poke()
        try:
            async with asyncio.timeout(timeout), self._pass_done:
                await self._pass_done.wait_for(lambda: self._passes_done >= goal)
        except TimeoutError as err:
            raise MailError(f"outbox pass did not end within {timeout} s") from err

    # -- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._loop()
        finally:
            self._session.close()

    async def _loop(self) -> None:
        error_pause = min(5.0, self.config.idle_poll)
        while not self._stopping():
            self._wake.clear()
            self._passes_started += 1
            try:
                wait = await self._pass()
            except _STORE_ERRORS as err:
                log.warning("outbox.store_error", error=str(err) or type(err).__name__)
                wait = error_pause
            except Exception:
                # A bug in one pass must not stop every email until the engine restarts.
                log.exception("outbox.pass_crashed")
                wait = error_pause
            async with self._pass_done:
                self._passes_done += 1
                self._pass_done.notify_all()
            if self._stopping():
                return
            await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        """Wait for a poke or ``seconds``; meanwhile close the SMTP session once idle."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (idle := self._session.idle_left()) is not None and idle < until - loop.time():
            if await _woken(self._wake, idle):
                break
            await self._session.quit()
        else:
            if not await _woken(self._wake, until - loop.time()):
                return
        await asyncio.sleep(self.config.wake_coalesce)  # poked: let a burst's rows gather

    def _stopping(self) -> bool:
        # aiosmtplib waits with asyncio.wait_for, which on Python 3.11 can swallow a
        # cancellation landing as the server replies (CPython gh-86296): the task then
        # carries on. The flag and the task's pending-cancel count catch what it missed.
        task = asyncio.current_task()
        return self._closing or bool(task and task.cancelling())

    async def _pass(self) -> float:
        """Send every due row; return the seconds until the next one is due."""
        due: float | None = None
        while not self._stopping():
            row, due = await self._claim()
            if row is None:
                break
            with structlog.contextvars.bound_contextvars(
                outbox_id=row.id, kind=row.kind, attempt=row.attempts
            ):
                await self._deliver(row)
        if due is None:
            return self.config.idle_poll
        # The floor keeps a row locked by another sender's claim from spinning this loop.
        return max(0.05, min(self.config.idle_poll, due))

    async def _claim(self) -> tuple[_Row | None, float | None]:
        """The oldest due row, claimed; else None and the seconds until the next is due."""
        async with self._pool.acquire(timeout=self.config.db_timeout) as conn:
            r = await conn.fetchrow(_CLAIM_SQL, self.config.lease, timeout=self.config.db_timeout)
        if r is None or r["id"] is None:
            due = None if r is None else r["next_due"]
            return None, None if due is None else float(due)
        payload = json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
        row = _Row(
            r["id"],
            r["kind"],
            r["request_id"],
            r["to_address"],
            payload,
            r["language"],
            r["attempts"],
        )
        return row, None

    async def _deliver(self, row: _Row) -> None:
        try:
            email = self._compose(row, datetime.now(UTC))
        except (Undeliverable, TemplateError) as err:
            await _finish(self._failed(row, str(err), permanent=True))
            return
        except Exception as err:
            # Building a message reads only the row: what fails now fails at every try
            # (a header the email package refuses, a bug). Give up at once, with the reason.
            log.exception("outbox.compose_crashed")
            reason = f"the message cannot be built: {type(err).__name__}: {err}"
            await _finish(self._failed(row, reason, permanent=True))
            return
        try:
            await self._session.send(email)
        except asyncio.CancelledError:
            # Whether the server accepted it is unknown: let the next start try again now
            # rather than after the lease (a duplicate keeps its Message-ID).
            await _finish(self._release(row))
            raise
        except MailError as err:
            await _finish(self._failed(row, str(err)))
            return
        await _finish(self._mark_sent(row))
        log.info("outbox.sent", to=email.recipient, message_id=email.message_id)

    # -- the email ---------------------------------------------------------------------------
    def _compose(self, row: _Row, now: datetime) -> Outgoing:
        recipient, to_header = recipient_of(row.to_address)
        if not isinstance(row.payload, dict):
            raise TemplateError(f"{row.kind} payload is not a JSON object")
        link = expires = None
        if row.kind == "expert_missed_call":
            request_id = row.request_id or row.payload.get("request_id")
            if not isinstance(request_id, int):
                raise TemplateError("expert_missed_call row has no request id")
            expires = now + timedelta(seconds=self.config.link_ttl)
            token = sign_solicit(request_id, expires, self.config.link_secret)
            link = solicit_url(self.config.public_url, request_id, token)
        subject, body = render(
            row.kind, row.language, row.payload, solicit_url=link, link_expires=expires
        )
        if found := control_characters(subject):  # a name from before names were checked
            raise TemplateError(f"the subject holds control characters ({', '.join(found)})")
        message_id = f"<outbox-{row.id}@{self._domain}>"
        headers = (
            self._from_header
            + to_header
            + header("Subject", subject)
            + f"Date: {format_datetime(now)}\r\n"
            + f"Message-ID: {message_id}\r\n"
            # RFC 3834: vacation responders must not answer a notification.
            + "Auto-Submitted: auto-generated\r\n"
        )
        return Outgoing(
            sender=self._envelope_from,
            recipient=recipient,
            message_id=message_id,
            headers=headers,
            body=body,
            language=row.language if row.language in LANGUAGES else "en",
        )

    # -- bookkeeping -------------------------------------------------------------------------
    async def _mark_sent(self, row: _Row) -> None:
        async with self._pool.acquire(timeout=self.config.db_timeout) as conn:
            await conn.execute(
                "UPDATE outbox_emails SET sent_at = now() WHERE id = $1",
                row.id,
                timeout=self.config.db_timeout,
            )

    async def _failed(self, row: _Row, error: str, *, permanent: bool = False) -> None:
        cfg = self.config
        give_up = permanent or row.attempts >= cfg.max_attempts
        delay = backoff_delay(row.attempts, cfg.backoff_base, cfg.backoff_cap)
        async with self._pool.acquire(timeout=cfg.db_timeout) as conn:
            await conn.execute(
                "UPDATE outbox_emails SET last_error = $2,"
                " next_try_at = now() + make_interval(secs => $3),"
                " failed_at = CASE WHEN $4 THEN now() END"
                " WHERE id = $1 AND sent_at IS NULL",
                row.id,
                error[:2000],
                delay,
                give_up,
                timeout=cfg.db_timeout,
            )
        if give_up:
            log.error("outbox.gave_up", error=error, to=row.to_address, permanent=permanent)
        else:
            log.warning("outbox.retry_later", error=error, delay=delay)

    async def _release(self, row: _Row) -> None:
        async with self._pool.acquire(timeout=self.config.db_timeout) as conn:
            await conn.execute(
                "UPDATE outbox_emails SET next_try_at = now()"
                " WHERE id = $1 AND sent_at IS NULL AND failed_at IS NULL",
                row.id,
                timeout=self.config.db_timeout,
            )


async def _woken(event: asyncio.Event, seconds: float) -> bool:
    """True when ``event`` is set within ``seconds`` (at once if it already is)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
            return True
    return False


async def _finish(step: Awaitable[None]) -> None:
    """Run a bookkeeping write to its end even if the sender is being cancelled meanwhile.

    Losing the write costs a duplicate email or a forgotten error; it is bounded by the
    database timeout, so waiting for it cannot hang a shutdown.
    """
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled() and task.exception() is not None:
            log.warning("outbox.bookkeeping_failed", error=str(task.exception()))
        raise
