"""The email sender's settings, and the arithmetic of its retries."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from typing import Any, Literal

from ivr_engine.config import Settings
from ivr_engine.errors import ConfigError


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    tls: Literal["none", "starttls", "tls"] = "none"
    user: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0  # each SMTP command
    ca_file: str | None = None  # CA bundle of a relay with a private certificate


@dataclass(frozen=True)
class OutboxConfig:
    smtp: SmtpConfig
    mail_from: str
    public_url: str
    link_secret: bytes = field(repr=False)
    link_ttl: float = 3600.0
    send_timeout: float = 60.0  # connect, STARTTLS, login and send of one email
    db_timeout: float = 10.0
    lease: float = 300.0
    backoff_base: float = 5.0
    backoff_cap: float = 600.0
    max_attempts: int = 8
    idle_poll: float = 30.0
    session_idle: float = 5.0  # an SMTP connection is kept this long after its last email
    session_max_emails: int = 20  # then closed, and a new one opened for the next email
    wake_coalesce: float = 0.5  # after a poke, wait this long so that a burst is one pass

    def __post_init__(self) -> None:
        if "@" not in parseaddr(self.mail_from)[1]:
            raise ConfigError(f"mail_from {self.mail_from!r} has no address with a domain")
        if not self.link_secret:
            raise ConfigError("link_secret is empty: links in emails could be forged")
        if self.lease <= self.send_timeout + self.db_timeout:
            # A shorter lease would let another sender take a row that is still being sent.
            raise ConfigError("the outbox lease must outlast send_timeout + db_timeout")
        if not 0 < self.backoff_base <= self.backoff_cap or self.max_attempts < 1:
            raise ConfigError("outbox backoff needs 0 < base <= cap and max_attempts >= 1")
        if self.wake_coalesce < 0 or self.session_idle < 0 or self.session_max_emails < 1:
            raise ConfigError(
                "the outbox needs wake_coalesce >= 0, session_idle >= 0, session_max_emails >= 1"
            )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> OutboxConfig:
        smtp = SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value(),
        )
        config = cls(
            smtp=smtp,
            mail_from=settings.mail_from,
            public_url=settings.public_url,
            link_secret=settings.link_secret.get_secret_value().encode(),
            link_ttl=settings.link_ttl,
        )
        return replace(config, **overrides)


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try, after ``attempts`` failed ones (1 → base)."""
    return min(cap, base * 2.0 ** min(max(attempts - 1, 0), 60))


def smtp_options(config: SmtpConfig) -> dict[str, Any]:
    """Keyword arguments of ``aiosmtplib.SMTP`` for this configuration."""
    return {
        "hostname": config.host,
        "port": config.port,
        "timeout": config.timeout,
        "use_tls": config.tls == "tls",
        # aiosmtplib's default (None) upgrades when the server offers STARTTLS: "none" is an
        # explicit choice, e.g. a relay on loopback with a certificate for another name.
        "start_tls": config.tls == "starttls",
        "username": config.user or None,
        "password": config.password if config.user else None,
        "cert_bundle": config.ca_file,
    }
