"""The JSON API of experts, waiting lists and consultations.

POST   /api/v1/experts                        create an expert (service staff)
POST   /api/v1/experts/{expert_id}/requests   a client asks for an expert -> 201
POST   /api/v1/requests                       a client asks for any expert of a category -> 201
GET    /api/v1/requests/{id}                  a request, its state and attempts
DELETE /api/v1/requests/{id}                  the client leaves the list (-> lost)
POST   /api/v1/requests/{id}/solicit          the expert asks to be called now
GET    /api/v1/consultations?expert_id=&limit=&before_id=   billing details, newest first
GET    /api/v1/consultations/{id}             one consultation's billing detail
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ivr_engine.domain.money import check_rate
from ivr_engine.domain.numbers import NumberRefused, dialable
from ivr_engine.errors import ListClosed
from ivr_engine.store import consultations, offers, people, waiting
from ivr_engine.web.deps import DEPS, WebDeps
from ivr_engine.web.http import (
    BIGINT,
    EMAIL,
    PHONE,
    error,
    path_int,
    read_body,
    refused_number,
)


class NewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_id: int | None = Field(None, gt=0, le=BIGINT)
    client_phone: str | None = Field(None, pattern=PHONE)
    client_alias: str = Field("", max_length=40)
    client_email: str = Field("", max_length=200, pattern=EMAIL)
    language: Literal["en", "it"] = "en"

    @model_validator(mode="after")
    def _one_client(self) -> NewRequest:
        if (self.client_id is None) == (self.client_phone is None):
            raise ValueError("give exactly one of client_id or client_phone")
        return self


CATEGORY = r"^[a-z][a-z_]{0,30}$"


class NewCategoryRequest(NewRequest):
    """A client asks for any expert of a category (of a language, if given)."""

    category: str = Field(pattern=CATEGORY, description="the experts' category, e.g. cartomancy")
    expert_language: Literal["en", "it"] | None = Field(
        None, description="offer it only to experts of this language"
    )


class NewExpert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str = Field(min_length=1, max_length=60)
    phone: str = Field(pattern=PHONE)
    rate_per_minute: Decimal = Field(decimal_places=2)
    category: str = Field("general", pattern=CATEGORY)
    email: str = Field("", max_length=200, pattern=EMAIL)
    language: Literal["en", "it"] = "en"
    acceptance_ivr: bool = True
    taking_calls: bool = True


async def create_expert(request: web.Request) -> web.Response:
    body: NewExpert = await read_body(request, NewExpert)
    deps = request.app[DEPS]
    s = deps.settings
    try:
        check_rate(body.rate_per_minute, s.rate_min, s.rate_max)
    except ValueError as err:
        return error(422, f"rate_per_minute: {err}")
    try:
        phone = dialable(body.phone, s.dial_policy)
    except NumberRefused as err:
        return refused_number("phone", err)
    expert_id = await people.create_expert(
        deps.pool,
        alias=body.alias,
        phone=phone,
        rate=body.rate_per_minute,
        email=body.email,
        language=body.language,
        acceptance_ivr=body.acceptance_ivr,
        taking_calls=body.taking_calls,
        category=body.category,
    )
    return web.json_response({"id": expert_id}, status=201)


async def create_request(request: web.Request) -> web.Response:
    expert_id = path_int(request, "expert_id")
    body: NewRequest = await read_body(request, NewRequest)
    deps = request.app[DEPS]
    client_id = await _client_of(deps, body)
    if isinstance(client_id, web.Response):
        return client_id
    try:
        view = await deps.actions.join(expert_id, client_id)
    except ListClosed as err:
        opening = err.next_opening.isoformat() if err.next_opening else None
        return web.json_response(
            {"error": str(err), "reason": err.reason, "next_opening": opening}, status=409
        )
    return web.json_response(view.as_json(), status=201)


async def create_category_request(request: web.Request) -> web.Response:
    """Offered to several experts of the category at once (flows/fanout.py); the answer
    says how long the client may expect to wait (``expected_delay_seconds``)."""
    body: NewCategoryRequest = await read_body(request, NewCategoryRequest)
    deps = request.app[DEPS]
    client_id = await _client_of(deps, body)
    if isinstance(client_id, web.Response):
        return client_id
    try:
        view = await offers.create(deps.pool, body.category, client_id, body.expert_language)
    except offers.UnknownCategory as err:
        return web.json_response({"error": str(err), "reason": "unknown_category"}, status=422)
    delay = await offers.expected_delay(deps.pool, view.id)
    return web.json_response({**view.as_json(), "expected_delay_seconds": delay}, status=201)


async def get_request(request: web.Request) -> web.Response:
    view = await waiting.get(request.app[DEPS].pool, path_int(request, "request_id"))
    return web.json_response(view.as_json())


async def leave_request(request: web.Request) -> web.Response:
    view = await request.app[DEPS].actions.leave(path_int(request, "request_id"))
    return web.json_response(view.as_json())


async def solicit_request(request: web.Request) -> web.Response:
    view = await request.app[DEPS].actions.solicit(path_int(request, "request_id"))
    return web.json_response(view.as_json(), status=202)


async def list_consultations(request: web.Request) -> web.Response:
    q = request.query
    if unknown := sorted(set(q) - {"expert_id", "limit", "before_id"}):
        return error(422, f"unknown query parameters: {', '.join(unknown)}")
    try:
        expert_id = int(q["expert_id"])
        limit = int(q.get("limit", "20"))
        before_id = int(q["before_id"]) if "before_id" in q else None
        if not (0 <= expert_id <= BIGINT and (before_id is None or 0 <= before_id <= BIGINT)):
            raise ValueError("out of range")
    except (KeyError, ValueError):
        return error(422, "expert_id (required), limit and before_id must be integers")
    if not 1 <= limit <= 100:
        return error(422, "limit must be between 1 and 100")
    items = await consultations.page(
        request.app[DEPS].pool, expert_id, limit=limit, before_id=before_id
    )
    next_before = items[-1]["id"] if len(items) == limit else None
    return web.json_response({"items": items, "next_before_id": next_before})


async def get_consultation(request: web.Request) -> web.Response:
    consultation_id = path_int(request, "consultation_id")
    item = await consultations.get(request.app[DEPS].pool, consultation_id)
    if item is None:
        return error(404, f"consultation {consultation_id} does not exist")
    return web.json_response(item)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/experts", create_expert)
    app.router.add_post("/api/v1/experts/{expert_id}/requests", create_request)
    app.router.add_post("/api/v1/requests", create_category_request)
    app.router.add_get("/api/v1/requests/{request_id}", get_request)
    app.router.add_delete("/api/v1/requests/{request_id}", leave_request)
    app.router.add_post("/api/v1/requests/{request_id}/solicit", solicit_request)
    app.router.add_get("/api/v1/consultations", list_consultations)
    app.router.add_get("/api/v1/consultations/{consultation_id}", get_consultation)


async def _client_of(deps: WebDeps, body: NewRequest | NewCategoryRequest) -> int | web.Response:
    """The client a new request is for: the given id, or the one with the given (dialable)
    number, made if new; a number we may not dial is answered 422 at once."""
    if body.client_id is not None:
        return body.client_id
    assert body.client_phone is not None
    try:
        phone = dialable(body.client_phone, deps.settings.dial_policy)
    except NumberRefused as err:
        return refused_number("client_phone", err)
    return await people.client_by_phone(
        deps.pool, phone, alias=body.client_alias, language=body.language, email=body.client_email
    )
