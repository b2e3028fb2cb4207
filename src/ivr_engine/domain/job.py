"""A claimed request with everything its call flow needs to know (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Job:
    request_id: int
    attempt_no: int
    expert_id: int
    expert_alias: str
    expert_phone: str
    expert_email: str
    expert_language: str
    rate: Decimal
    category: str
    acceptance_ivr: bool
    client_id: int
    client_alias: str
    client_phone: str
    client_language: str
    # The caller holding on the line for this request (flows/holding.py): the client leg is
    # their channel, no call is placed to the client.
    holding_channel: str | None = None
