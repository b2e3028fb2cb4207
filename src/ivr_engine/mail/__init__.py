"""Emails to experts: the outbox sender, the texts, and the signed links they carry.

The engine writes ``outbox_emails`` rows in the same transaction as the business event;
``OutboxSender`` delivers them (at-least-once, stable Message-ID per row), ``templates``
renders each kind in English or Italian, ``links`` signs and checks the "call me now" link.

Errors (to move into ``ivr_engine.errors``; each subclasses ``IvrError`` until then)::

    IvrError
    ├── MailError               an email could not be handed to the SMTP server
    │   ├── Undeliverable       the row can never be sent: no valid recipient address
    │   └── TemplateError       unknown kind, or a payload missing a field
    └── LinkError               a signed link from an email is not valid
        ├── LinkForged          malformed, wrong secret, or made for another request
        └── LinkExpired         authentic, but past its expiry
"""

from ivr_engine.errors import (
    LinkError,
    LinkExpired,
    LinkForged,
    MailError,
    TemplateError,
    Undeliverable,
)
from ivr_engine.mail.config import OutboxConfig, SmtpConfig, backoff_delay
from ivr_engine.mail.links import (
    sign_solicit,
    solicit_url,
    verify_solicit,
)
from ivr_engine.mail.sender import OutboxSender
from ivr_engine.mail.templates import render

__all__ = [
    "LinkError",
    "LinkExpired",
    "LinkForged",
    "MailError",
    "OutboxConfig",
    "OutboxSender",
    "SmtpConfig",
    "TemplateError",
    "Undeliverable",
    "backoff_delay",
    "render",
    "sign_solicit",
    "solicit_url",
    "verify_solicit",
]
