"""One SMTP connection kept open across the outbox's emails.

Opening a connection per email (TCP, greeting, EHLO, perhaps STARTTLS and login, QUIT) cost
the engine more CPU than the email itself. The sender keeps one session open while emails
keep coming: it is closed with QUIT after ``session_idle`` seconds without one, after
``session_max_emails`` emails (some relays cap the messages of one connection), and at once
on any error.

A reused connection may have been closed by the server meanwhile (its idle timeout, a
restart): when sending on it fails because the connection is gone, the email is sent once
more on a new connection, within the same ``send_timeout``. If the server had in fact
accepted it before the connection broke, that makes a duplicate with the same Message-ID:
the outbox's at-least-once promise, unchanged.
"""

from __future__ import annotations

import asyncio
import socket

import aiosmtplib

from ivr_engine.errors import MailError
from ivr_engine.mail.config import OutboxConfig, smtp_options
from ivr_engine.mail.wire import Outgoing

# The connection was gone before the server said anything about this email.
_GONE = (aiosmtplib.SMTPServerDisconnected, ConnectionError)
_SERVICE_CLOSING = 421  # RFC 5321: the server is closing the transmission channel


class SmtpSession:
    """The sender's connection; ``close()`` may be called at any time, any number of times."""

    def __init__(self, config: OutboxConfig) -> None:
        self.config = config
        self._client: aiosmtplib.SMTP | None = None
        self._sent = 0  # emails accepted on the open connection
        self._last_used = 0.0  # loop time of the last acceptance
        self._local_hostname: str | None = None  # EHLO name, looked up once (a DNS query)

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._client.is_connected

    def idle_left(self) -> float | None:
        """Seconds before the open session should be closed; None when none is open."""
        if self._client is None:
            return None
        return self._last_used + self.config.session_idle - asyncio.get_running_loop().time()

    async def send(self, email: Outgoing) -> None:
        """Hand ``email`` to the server; MailError when it was not accepted."""
        smtp = self.config.smtp
        try:
            async with asyncio.timeout(self.config.send_timeout):
                reused = self._reusable()
                try:
                    await self._send_once(email)
                except (aiosmtplib.SMTPException, OSError) as err:
                    if not (reused and _connection_gone(err)):
                        raise
                    self.close()  # the server dropped the idle connection: a new one
                    await self._send_once(email)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
            self.close()
            detail = str(err) or type(err).__name__
            raise MailError(f"SMTP {smtp.host}:{smtp.port}: {detail}") from err
        except BaseException:
            self.close()  # cancelled mid-dialogue: the connection's state is unknown
            raise
        self._sent += 1
        self._last_used = asyncio.get_running_loop().time()

    def _reusable(self) -> bool:
        """True when an open connection is kept for this email; else the old one is shut."""
        if self.is_open and self._sent < self.config.session_max_emails:
            return True
        self.close()
        return False

    async def _send_once(self, email: Outgoing) -> None:
        client = self._client
        if client is None:
            client = await self._connect()
        options = ["SMTPUTF8"] if email.utf8 else []
        eight_bit = client.supports_extension("8bitmime")
        if eight_bit:
            options.append("BODY=8BITMIME")
        await client.sendmail(
            email.sender, [email.recipient], email.wire(eight_bit), mail_options=options
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            **smtp_options(self.config.smtp), local_hostname=self._local_hostname
        )
        self._client, self._sent = client, 0
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            # Greeted before the first email: its encoding depends on the server's 8BITMIME.
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                if not client.is_connected:
                    raise
                await client.helo()
        return client

    async def quit(self) -> None:
        """Close the session politely (QUIT); a failure of the courtesy is not an error."""
        client = self._client
        task = asyncio.current_task()
        try:
            if client is not None and client.is_connected and not (task and task.cancelling()):
                async with asyncio.timeout(self.config.smtp.timeout):
                    await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Drop the connection now, without QUIT."""
        client, self._client, self._sent = self._client, None, 0
        if client is not None:
            client.close()


def _connection_gone(err: BaseException) -> bool:
    if isinstance(err, _GONE):
        return True
    return isinstance(err, aiosmtplib.SMTPResponseException) and err.code == _SERVICE_CLOSING
