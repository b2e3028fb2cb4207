"""The HTTP API (aiohttp): requests enter the waiting lists here.

    POST   /api/v1/experts                        create an expert (service staff)
    POST   /api/v1/experts/{expert_id}/requests   a client asks for an expert -> 201
    GET    /api/v1/requests/{id}                  a request, its state and attempts
    DELETE /api/v1/requests/{id}                  the client leaves the list (-> lost)
    POST   /api/v1/requests/{id}/solicit          the expert asks to be called now
    GET    /api/v1/consultations?expert_id=&limit=&before_id=   billing details, newest first
    GET    /api/v1/consultations/{id}             one consultation's billing detail
    GET    /solicit/{request_id}?token=           (link in an email) confirmation page
    POST   /solicit/{request_id}                  (form of that page) call me now
    GET    /healthz                               PostgreSQL, ARI and AMI status (no auth)

Every /api route needs ``Authorization: Bearer <IVR_API_TOKEN>``. Errors are JSON
``{"error": "..."}`` with 400/401/404/409/422.
"""

from __future__ import annotations

import hmac
import html
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ivr_engine.domain.money import check_rate
from ivr_engine.domain.planning import Reason
from ivr_engine.errors import Conflict, LinkError, NotFound, PlanningError
from ivr_engine.mail.links import verify_solicit
from ivr_engine.store import consultations
from ivr_engine.store import planning as planning_store

if TYPE_CHECKING:
    from ivr_engine.engine import Engine

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ENGINE: web.AppKey[Engine] = web.AppKey("engine")

PHONE = r"^\+?[0-9]{3,20}$"


class NewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_id: int | None = Field(None, gt=0)
    client_phone: str | None = Field(None, pattern=PHONE)
    client_alias: str = Field("", max_length=40)
    client_email: str = Field("", max_length=200)
    language: Literal["en", "it"] = "en"

    @model_validator(mode="after")
    def _one_client(self) -> NewRequest:
        if (self.client_id is None) == (self.client_phone is None):
            raise ValueError("give exactly one of client_id or client_phone")
        return self


class NewExpert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str = Field(min_length=1, max_length=60)
    phone: str = Field(pattern=PHONE)
    rate_per_minute: Decimal = Field(decimal_places=2)
    category: str = Field("general", pattern=r"^[a-z][a-z_]{0,30}$")
    email: str = Field("", max_length=200)
    language: Literal["en", "it"] = "en"
    acceptance_ivr: bool = True
    taking_calls: bool = True


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not valid JSON"}), content_type="application/json"
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
        )
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({"error": details}), content_type="application/json"
        ) from None


def _int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit():
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"{name} must be a number"}), content_type="application/json"
        )
    return int(raw)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        token = request.app[ENGINE].settings.api_token.get_secret_value()
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "missing or wrong bearer token")
    try:
        return await handler(request)
    except NotFound as err:
        return _error(404, str(err))
    except Conflict as err:
        return _error(409, str(err))
    except PlanningError as err:
        return _error(422, str(err))


async def create_expert(request: web.Request) -> web.Response:
    body: NewExpert = await _body(request, NewExpert)
    engine = request.app[ENGINE]
    s = engine.settings
    try:
        check_rate(body.rate_per_minute, s.rate_min, s.rate_max)
    except ValueError as err:
        return _error(422, f"rate_per_minute: {err}")
    expert_id = await engine.store.create_expert(
        alias=body.alias,
        phone=body.phone,
        rate=body.rate_per_minute,
        email=body.email,
        language=body.language,
        acceptance_ivr=body.acceptance_ivr,
        taking_calls=body.taking_calls,
        category=body.category,
    )
    return web.json_response({"id": expert_id}, status=201)


async def create_request(request: web.Request) -> web.Response:
    expert_id = _int(request, "expert_id")
    body: NewRequest = await _body(request, NewRequest)
    engine = request.app[ENGINE]
    client_id = body.client_id
    if client_id is None:
        assert body.client_phone is not None
        client_id = await engine.store.client_by_phone(
            body.client_phone,
            alias=body.client_alias,
            language=body.language,
            email=body.client_email,
        )
    av = await planning_store.load(engine.store.pool, expert_id)
    now = av.at(datetime.now(UTC))
    # A pause does not close the list: the request waits until the expert is back.
    if not now.open and now.reason is not Reason.PAUSED:
        opening = now.next_opening.isoformat() if now.next_opening else None
        return web.json_response(
            {
                "error": f"expert {expert_id} is not taking calls: {now.reason.value}"
                + (f", next opening {opening}" if opening else ""),
                "reason": now.reason.value,
                "next_opening": opening,
            },
            status=409,
        )
    view = await engine.store.create_request(expert_id, client_id)
    engine.dispatcher.poke()
    return web.json_response(view.as_json(), status=201)


async def get_request(request: web.Request) -> web.Response:
    view = await request.app[ENGINE].store.get(_int(request, "request_id"))
    return web.json_response(view.as_json())


async def leave_request(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    request_id = _int(request, "request_id")
    view = await engine.store.leave(request_id)
    await engine.dispatcher.cancel_request(request_id)
    return web.json_response(view.as_json())


async def solicit_request(request: web.Request) -> web.Response:
    view = await request.app[ENGINE].solicit(_int(request, "request_id"))
    return web.json_response(view.as_json(), status=202)


async def list_consultations(request: web.Request) -> web.Response:
    q = request.query
    try:
        expert_id = int(q["expert_id"])
        limit = int(q.get("limit", "20"))
        before_id = int(q["before_id"]) if "before_id" in q else None
    except (KeyError, ValueError):
        return _error(422, "expert_id (required), limit and before_id must be integers")
    if not 1 <= limit <= 100:
        return _error(422, "limit must be between 1 and 100")
    items = await consultations.page(
        request.app[ENGINE].store.pool, expert_id, limit=limit, before_id=before_id
    )
    next_before = items[-1]["id"] if len(items) == limit else None
    return web.json_response({"items": items, "next_before_id": next_before})


async def get_consultation(request: web.Request) -> web.Response:
    consultation_id = _int(request, "consultation_id")
    item = await consultations.get(request.app[ENGINE].store.pool, consultation_id)
    if item is None:
        return _error(404, f"consultation {consultation_id} does not exist")
    return web.json_response(item)


def _check_link(request: web.Request, request_id: int, token: str) -> str | None:
    secret = request.app[ENGINE].settings.link_secret.get_secret_value().encode()
    try:
        verify_solicit(request_id, token, secret, datetime.now(UTC))
    except LinkError as err:
        return str(err)
    return None


async def solicit_page(request: web.Request) -> web.Response:
    """The link in the missed-call email: a page that asks before triggering the call."""
    request_id = _int(request, "request_id")
    token = request.query.get("token", "")
    problem = _check_link(request, request_id, token)
    if problem:
        return _html(403, "This link cannot be used", problem)
    return _html(
        200,
        "Call the client now?",
        "Your client may still be waiting. Press the button and we call your phone now.",
        form=(request_id, token),
    )


async def solicit_from_link(request: web.Request) -> web.Response:
    request_id = _int(request, "request_id")
    form = await request.post()
    token = str(form.get("token", ""))
    problem = _check_link(request, request_id, token)
    if problem:
        return _html(403, "This link cannot be used", problem)
    try:
        await request.app[ENGINE].solicit(request_id)
    except (Conflict, NotFound) as err:
        return _html(409, "Too late", f"The client is no longer waiting ({err}).")
    return _html(202, "Calling you now", "Your phone will ring in a moment.")


def _html(status: int, title: str, text: str, form: tuple[int, str] | None = None) -> web.Response:
    button = ""
    if form is not None:
        request_id, token = form
        button = (
            f'<form method="post" action="/solicit/{request_id}">'
            f'<input type="hidden" name="token" value="{html.escape(token)}">'
            '<button type="submit">Call me now</button></form>'
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}</body></html>"
    )
    return web.Response(status=status, text=page, content_type="text/html")


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[ENGINE].health()
    return web.json_response(report, status=200 if report["ok"] else 503)


def make_app(engine: Engine) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[ENGINE] = engine
    app.router.add_post("/api/v1/experts", create_expert)
    app.router.add_post("/api/v1/experts/{expert_id}/requests", create_request)
    app.router.add_get("/api/v1/requests/{request_id}", get_request)
    app.router.add_delete("/api/v1/requests/{request_id}", leave_request)
    app.router.add_post("/api/v1/requests/{request_id}/solicit", solicit_request)
    app.router.add_get("/api/v1/consultations", list_consultations)
    app.router.add_get("/api/v1/consultations/{consultation_id}", get_consultation)
    app.router.add_get("/solicit/{request_id}", solicit_page)
    app.router.add_post("/solicit/{request_id}", solicit_from_link)
    app.router.add_get("/healthz", healthz)
    from ivr_engine import api_planning, panel

    api_planning.add_routes(app)
    panel.setup(app, engine.hub)
    return app
