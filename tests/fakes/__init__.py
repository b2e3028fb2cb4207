"""Loopback fakes of the services the engine talks to (for fast tests)."""

from tests.fakes.ari import (
    FakeAri,
    FakeChannel,
    Phone,
    answers,
    busy,
    never_answers,
    refuses,
    voicemail,
)

__all__ = [
    "FakeAri",
    "FakeChannel",
    "Phone",
    "answers",
    "busy",
    "never_answers",
    "refuses",
    "voicemail",
]
