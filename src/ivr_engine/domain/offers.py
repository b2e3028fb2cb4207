"""Category requests offered to several experts at once: what a fan-out's flow is given, and
the Job the winner's call continues with (no I/O).

The distribution rule (applied by ``store/offers.py``: in SQL, the planning hours with
``store/planning``; documented in the README): among the experts of the request's category
(and of its language, when the client asked for one) who take calls, have the phone channel
on, are within their planning hours, are not paused, not marked unreachable after a missed
call, not on a call, not rung for anything else (another offer, a line test), whose own
waiting list is not in the client's way (the client is not already waiting for them), and
who have not refused or handed back this request, the ``IVR_OFFER_FANOUT`` first by

1. fewest consultations started today (UTC),
2. then longest idle: the oldest last call (consultation end or offer end; never called
   comes first),
3. then the lowest expert id (a stable tie-break)

are rung at the same time. The first to press 1 wins the request. Each pass of the dispatcher
claims the experts' own waiting lists before category requests, so a client who asked for an
expert by name is never overtaken by a category request.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ivr_engine.domain.job import Job


@dataclass(frozen=True)
class Candidate:
    """One expert a category request is offered to, and the offer row that says so."""

    offer_id: int
    expert_id: int
    alias: str
    phone: str
    email: str
    language: str
    rate: Decimal
    category: str
    acceptance_ivr: bool


@dataclass(frozen=True)
class FanoutJob:
    request_id: int
    round: int  # requests.attempts: how many rounds of offers so far, this one included
    category: str
    client_id: int
    client_alias: str
    client_phone: str
    client_language: str
    candidates: tuple[Candidate, ...]

    def won_by(self, c: Candidate) -> Job:
        """The ordinary Job of the acceptance flow, once ``c`` has won the request."""
        return Job(
            request_id=self.request_id,
            attempt_no=self.round,
            expert_id=c.expert_id,
            expert_alias=c.alias,
            expert_phone=c.phone,
            expert_email=c.email,
            expert_language=c.language,
            rate=c.rate,
            category=c.category,
            acceptance_ivr=True,  # a fan-out always asks for the key: it decides the race
            client_id=self.client_id,
            client_alias=self.client_alias,
            client_phone=self.client_phone,
            client_language=self.client_language,
        )
