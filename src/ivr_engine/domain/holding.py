"""Callers on the line: the place a new request takes, and the wait a holding caller is told.

No I/O: the store reads the history, these rules turn it into numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

Policy = Literal["fifo", "new_first"]

NEW_CLIENT_RANK = 0
RETURNING_CLIENT_RANK = 1
RECENT_CONSULTATIONS = 20  # the estimate averages this many of the expert's last consultations


def list_rank(policy: Policy, *, earlier_consultations: int) -> int:
    """The request's rank (lower goes first, after interrupted calls, before due time)."""
    if policy == "new_first" and earlier_consultations > 0:
        return RETURNING_CLIENT_RANK
    return NEW_CLIENT_RANK


def estimated_wait_minutes(
    ahead: int, *, expert_busy: bool, recent_seconds: Sequence[int], default_minutes: float
) -> int:
    """Whole minutes (rounded up, at least 1) until the expert is likely free for this caller:
    one average consultation per client ahead, half of one for the call in progress."""
    if recent_seconds:
        average = sum(recent_seconds) / len(recent_seconds) / 60
    else:
        average = default_minutes
    minutes = average * ahead + (average / 2 if expert_busy else 0)
    return max(1, math.ceil(minutes))


def callback_deadline(missed_at: datetime, minutes: float) -> datetime:
    """The promise made to a missed caller: called back by then."""
    return missed_at + timedelta(minutes=minutes)
