"""An outbox email as the bytes SMTP carries, written directly rather than by ``EmailMessage``.

Why not the email package's ``EmailMessage``: it parses every header it is given into
objects and folds them again when flattened, about 2 ms of CPU per email (a twentieth of the
engine's CPU per consultation) for messages that are all alike: one plain-text part, the same
ten headers. Here only what needs it goes through the package: the Subject (encoded words
when it is not ASCII: the package's own header class, so the bytes are the same), the From
header (once per sender) and a To that is not a bare address. The result is what
``EmailMessage`` + ``set_content`` would write; ``tests/unit/test_mail_wire.py`` parses both
and compares them.

The body's transfer encoding follows the email package's choice: 7bit when the text is ASCII,
8bit when it is not and the server takes 8BITMIME, quoted-printable when a line is longer than
78 octets; for a server without 8BITMIME quoted-printable too (the package re-encoded in
base64 there: the same text, less legible).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import quoprimime
from email.headerregistry import HeaderRegistry
from email.policy import SMTP, SMTPUTF8
from email.utils import parseaddr

from ivr_engine.errors import Undeliverable

MAX_LINE = 78  # RFC 5322's recommended line length, the email package's max_line_length
# A bare ASCII address (dot-atom local part and domain): the To header is the address itself.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# The email policies' own header classes (the registry builds a new class at every lookup).
_REGISTRY = HeaderRegistry()
_SUBJECT = _REGISTRY["subject"]
_ADDRESS = _REGISTRY["to"]


def header(name: str, value: str) -> str:
    """``name: value`` folded and encoded as the email package writes it (CRLF-terminated)."""
    factory = _SUBJECT if name.lower() == "subject" else _REGISTRY[name]
    return str(factory(name, value).fold(policy=SMTP))


def recipient_of(to_address: str) -> tuple[str, str]:
    """(the envelope recipient, the folded To header) of an outbox row's address.

    Undeliverable when the text holds no address or a line break.
    """
    if _PLAIN_ADDRESS.fullmatch(to_address) and len(to_address) <= MAX_LINE - len("To: "):
        return to_address, f"To: {to_address}\r\n"
    recipient = parseaddr(to_address)[1]
    if "@" not in recipient or any(c in to_address for c in "\r\n"):
        raise Undeliverable(f"no valid recipient address: {to_address!r}")
    policy = SMTP if recipient.isascii() else SMTPUTF8
    return recipient, str(_ADDRESS("To", to_address).fold(policy=policy))


@dataclass(frozen=True)
class Outgoing:
    """One email ready for SMTP: its envelope, its headers and its plain-text body."""

    sender: str  # MAIL FROM
    recipient: str  # RCPT TO
    message_id: str
    headers: str  # folded lines, CRLF-terminated, before the MIME headers
    body: str
    language: str  # Content-Language

    @property
    def utf8(self) -> bool:
        """An address that is not ASCII: the server must take SMTPUTF8."""
        return not (self.sender.isascii() and self.recipient.isascii())

    def wire(self, eight_bit: bool) -> bytes:
        """The message as DATA carries it (before dot-stuffing, which the client does);
        ``eight_bit``: the server announced 8BITMIME."""
        encoding, text = _encode_body(self.body, eight_bit)
        mime = (
            'Content-Type: text/plain; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n"
            "MIME-Version: 1.0\r\n"
            f"Content-Language: {self.language}\r\n"
        )
        body = text.replace("\n", "\r\n")
        return (self.headers + mime + "\r\n").encode("utf-8") + body.encode(
            "utf-8" if encoding == "8bit" else "ascii"
        )


def _encode_body(body: str, eight_bit: bool) -> tuple[str, str]:
    """(Content-Transfer-Encoding, the body with LF line ends), as ``set_content`` picks."""
    lines = body.encode("utf-8").splitlines()
    short = max((len(line) for line in lines), default=0) <= MAX_LINE
    joined = b"\n".join(lines) + b"\n"
    if short and joined.isascii():
        return "7bit", joined.decode("ascii")
    if short and eight_bit:
        return "8bit", joined.decode("utf-8")
    return "quoted-printable", quoprimime.body_encode(joined.decode("latin-1"), MAX_LINE)
