"""What the API answers, as pydantic models: the OpenAPI document is generated from them and
from the request bodies the handlers validate (requests.py, planning.py). The handlers
build their JSON from the store; the tests check every answer against these models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ivr_engine.domain.requests import RequestState

MONEY = r"^-?[0-9]+\.[0-9]+$"  # a Decimal written as a string, never a float


class ErrorBody(BaseModel):
    """Every error of the API."""

    error: str = Field(description="what went wrong, for a person")


class ConflictBody(ErrorBody):
    """409: the expert is not taking calls, the client already waits, the request moved on,
    or the waiting list is closed (then with the reason and the next opening); or going
    available needs a passed line test first (reason ``line_test_required``)."""

    reason: str | None = Field(
        None, description="why the list is closed (outside_hours, ...), or line_test_required"
    )
    next_opening: datetime | None = Field(None, description="when the list opens again")


class InvalidBody(ErrorBody):
    """422: the input does not fit the rules; for a phone number, why it is refused."""

    reason: str | None = Field(
        None,
        description="a refused number: emergency, short, invalid, country, type (premium"
        " rate, shared cost, unknown...) or format; unknown_category: no expert of that"
        " category (and language) takes calls",
    )


class Created(BaseModel):
    id: int


class RequestOut(BaseModel):
    """A waiting-list entry, or a category request (``category`` set, ``expert_id`` null
    until an expert wins it)."""

    id: int
    expert_id: int | None = Field(description="null: a category request nobody has won yet")
    client_id: int
    state: RequestState
    attempts: int = Field(description="calls placed to the expert so far")
    next_attempt_at: datetime
    end_reason: str
    created_at: datetime
    category: str | None = Field(None, description="set: a category request")


class CategoryRequestOut(RequestOut):
    """A new category request, with how long the client may expect to wait."""

    expected_delay_seconds: int = Field(
        description="0 when an expert can be rung now; else the estimate the README describes"
    )


class AvailabilityOut(BaseModel):
    open: bool = Field(description="does the waiting list take new requests now")
    reason: str = Field(description="open, outside_hours, paused, phone_off, ...")
    closes_at: datetime | None
    next_opening: datetime | None
    paused_until: datetime | None
    channels: list[str] = Field(description="the channels switched on: phone, chat, video")
    timezone: str
    has_planning: bool


class PlanningOut(BaseModel):
    timezone: str
    has_planning: bool
    weekly: dict[str, list[str]] = Field(description='weekday -> slots, e.g. "09:00-12:30"')
    days: dict[str, list[str]] = Field(description="YYYY-MM-DD -> that date's slots")


class RefusedOut(BaseModel):
    refused: int
    proposed_start: datetime | None = Field(description="the appointment offered, if any")


class ConsultationOut(BaseModel):
    """One consultation's billing detail: amounts are EUR as decimal strings."""

    id: int
    request_id: int
    expert_id: int
    expert_alias: str
    client_id: int
    client_alias: str
    start: datetime
    end: datetime | None
    ended_by: str
    billed_seconds: int | None
    charged_seconds: int | None
    rate_per_minute: str = Field(pattern=MONEY)
    category: str
    line_type: str
    transfer_per_minute: str = Field(pattern=MONEY)
    transfer_rule: str
    commission_percent: str = Field(pattern=MONEY)
    client_price: str | None = Field(pattern=MONEY)
    transfer_cost: str | None = Field(pattern=MONEY)
    commission: str | None = Field(pattern=MONEY)
    earnings: str | None = Field(pattern=MONEY)
    note: str


class ConsultationPage(BaseModel):
    items: list[ConsultationOut]
    next_before_id: int | None = Field(description="pass as before_id for the next page")
