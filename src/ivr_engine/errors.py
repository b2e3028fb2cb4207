"""The project's one exception hierarchy.

IvrError
├── ConfigError                 settings missing or invalid
├── AsteriskError               anything between us and Asterisk
│   ├── AriError                an ARI REST call failed (status, path, body kept)
│   │   └── AriNotFound         404: the channel/bridge/playback is already gone
│   ├── AriUnavailable          ARI cannot be reached (connect error, timeout)
│   └── AmiError                an AMI action failed or AMI cannot be reached
├── CallError                   a call leg could not do what the flow asked
│   ├── Hangup                  the leg hung up while a step was waiting on it
│   ├── OriginateFailed         the far end was busy / did not answer / failed (cause kept)
│   └── StepTimeout             a step waited longer than its budget
├── StoreError                  PostgreSQL-side failures the caller can act on
│   ├── NotFound                unknown expert / client / request
│   ├── Conflict                the expert is not taking calls, or the request moved on
│   │   ├── ListClosed          the expert's waiting list is closed now (reason, next opening)
│   │   ├── LineTestRefused     a line test cannot start now (in a call, one already running)
│   │   └── LineTestRequired    going available needs a passed line test first
│   └── InvalidTransition       a request state change that the rules forbid
├── SoundRenderError            espeak-ng / sox could not render a prompt (sounds.py)
├── MailError                   an email could not be handed to the SMTP server
│   ├── Undeliverable           the outbox row can never be sent as written
│   └── TemplateError           unknown kind or a payload missing a field
├── PlanningError               a planning, override or edit the rules refuse (also ValueError)
└── LinkError                   a signed link from an email is not valid
    ├── LinkForged              malformed, or not signed by us for this request
    └── LinkExpired             authentic, but its validity has ended

The development kit (``ivr_devkit``, not part of the runtime) adds SandboxError and
ClusterError under IvrError in ``ivr_devkit.errors``.
"""

from __future__ import annotations

from datetime import datetime


class IvrError(Exception):
    """Base of every error raised by ivr-engine."""


class ConfigError(IvrError):
    pass


class AsteriskError(IvrError):
    pass


class AriError(AsteriskError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"ARI {method} {path} answered {status}: {body[:300]}")
        self.method = method
        self.path = path
        self.status = status
        self.body = body


class AriNotFound(AriError):
    pass


class AriUnavailable(AsteriskError):
    pass


class AmiError(AsteriskError):
    pass


class CallError(IvrError):
    pass


class Hangup(CallError):
    """Raised inside a flow when the leg it is waiting on hangs up."""

    def __init__(self, channel_id: str, cause: int | None = None, cause_txt: str = "") -> None:
        super().__init__(f"channel {channel_id} hung up (cause {cause} {cause_txt})".strip())
        self.channel_id = channel_id
        self.cause = cause
        self.cause_txt = cause_txt


class OriginateFailed(CallError):
    """The far end never answered: busy, no answer, congestion, unreachable."""

    def __init__(self, channel_id: str, cause: int | None, cause_txt: str = "") -> None:
        super().__init__(f"channel {channel_id} not answered (cause {cause} {cause_txt})")
        self.channel_id = channel_id
        self.cause = cause
        self.cause_txt = cause_txt


class StepTimeout(CallError):
    pass


class StoreError(IvrError):
    pass


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


class ListClosed(Conflict):
    """The expert's waiting list does not take new clients now."""

    def __init__(self, expert_id: int, reason: str, next_opening: datetime | None) -> None:
        opening = f", next opening {next_opening.isoformat()}" if next_opening else ""
        super().__init__(f"expert {expert_id} is not taking calls: {reason}{opening}")
        self.reason = reason
        self.next_opening = next_opening


class LineTestRefused(Conflict):
    """A line test cannot start now: ``reason`` is ``in_call`` (the expert is being rung or
    is in a consultation), ``running`` (a test is already under way) or ``stopping`` (this
    engine is shutting down)."""

    def __init__(self, expert_id: int, reason: str) -> None:
        said = {
            "in_call": "is being called or is in a consultation",
            "running": "already has a line test in progress",
            "stopping": "cannot be tested now: the engine is stopping",
        }.get(reason, reason)
        super().__init__(f"expert {expert_id} {said}")
        self.reason = reason


class LineTestRequired(Conflict):
    """The expert may not go available without a passed line test in the last ``hours``."""

    def __init__(self, expert_id: int, hours: float, last_passed: datetime | None) -> None:
        when = f"last passed {last_passed.isoformat()}" if last_passed else "never passed"
        super().__init__(
            f"expert {expert_id} needs a passed line test in the last {hours:g} hours"
            f" before going available ({when})"
        )
        self.reason = "line_test_required"
        self.hours = hours
        self.last_passed = last_passed


class InvalidTransition(StoreError):
    pass


class LinkError(IvrError):
    """A signed link from an email is not valid."""


class LinkForged(LinkError):
    """The token is malformed, or was not signed with our secret for this request."""


class LinkExpired(LinkError):
    """The token is authentic but its validity has ended."""


class MailError(IvrError):
    """An email could not be handed to the SMTP server (refused, unreachable, timed out)."""


class Undeliverable(MailError):
    """The row can never be sent as written: retrying cannot help."""


class TemplateError(MailError):
    """Unknown kind, or a payload missing a field: sending again cannot help."""


class SoundRenderError(IvrError):
    """The prompts could not be rendered (tools missing, a tool failed, bad arguments)."""


class PlanningError(IvrError, ValueError):
    """A planning, override or edit the rules refuse; the message can be shown as it is."""
