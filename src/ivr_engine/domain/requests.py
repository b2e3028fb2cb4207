"""The waiting-list entry: its states and the moves allowed between them.

    waiting ──► ringing_expert ──► ringing_client ──► connected ──► completed
       ▲  │          │   │               │
       │  │          │   └► refused      └► client_unreachable
       └──┼──────────┘ (no answer / busy: back to waiting, retried later)
          └► lost (client left, or the expert never answered)

Any non-final state may also move to ``failed`` (an engine-side error that a person must look
at) and ``waiting``/``ringing_expert`` to ``lost`` when the client leaves the list; ``waiting``
goes straight to ``refused`` when the expert refuses every waiting client at once. A request
whose call was cut by an engine stop goes back from ``ringing_*`` to ``waiting``: nothing is lost.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ivr_engine.errors import InvalidTransition


class RequestState(enum.StrEnum):
    WAITING = "waiting"
    RINGING_EXPERT = "ringing_expert"
    RINGING_CLIENT = "ringing_client"
    CONNECTED = "connected"
    COMPLETED = "completed"
    REFUSED = "refused"
    LOST = "lost"
    CLIENT_UNREACHABLE = "client_unreachable"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_active(self) -> bool:
        """The expert's phone is engaged by this request."""
        return self in ACTIVE_STATES


S = RequestState
FINAL_STATES = frozenset({S.COMPLETED, S.REFUSED, S.LOST, S.CLIENT_UNREACHABLE, S.FAILED})
ACTIVE_STATES = frozenset({S.RINGING_EXPERT, S.RINGING_CLIENT, S.CONNECTED})

TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    S.WAITING: frozenset({S.RINGING_EXPERT, S.REFUSED, S.LOST, S.FAILED}),
    S.RINGING_EXPERT: frozenset({S.WAITING, S.RINGING_CLIENT, S.REFUSED, S.LOST, S.FAILED}),
    S.RINGING_CLIENT: frozenset({S.WAITING, S.CONNECTED, S.CLIENT_UNREACHABLE, S.LOST, S.FAILED}),
    S.CONNECTED: frozenset({S.COMPLETED, S.FAILED}),
}


def check_transition(current: RequestState, target: RequestState) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"request cannot go from {current} to {target}")


def can_leave(state: RequestState) -> bool:
    """A client may leave the waiting list until the expert has accepted."""
    return state in (S.WAITING, S.RINGING_EXPERT)


@dataclass(frozen=True)
class RequestView:
    """A waiting-list entry as the API and the flows read it."""

    id: int
    expert_id: int | None  # None: a category request nobody has won yet
    client_id: int
    state: RequestState
    attempts: int
    next_attempt_at: datetime
    end_reason: str
    created_at: datetime
    category: str | None = None  # set: a category request (offered to several experts)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "expert_id": self.expert_id,
            "client_id": self.client_id,
            "state": self.state.value,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "end_reason": self.end_reason,
            "created_at": self.created_at.isoformat(),
            "category": self.category,
        }
