"""The HTTP API (aiohttp): requests enter the waiting lists here.

    POST   /api/v1/experts                        create an expert (service staff)
    POST   /api/v1/experts/{expert_id}/requests   a client asks for an expert -> 201
    GET    /api/v1/requests/{id}                  a request, its state and attempts
    DELETE /api/v1/requests/{id}                  the client leaves the list (-> lost)
    POST   /api/v1/requests/{id}/solicit          the expert asks to be called now
    GET    /healthz                               PostgreSQL, ARI and AMI status (no auth)

Every /api route needs ``Authorization: Bearer <IVR_API_TOKEN>``. Errors are JSON
``{"error": "..."}`` with 400/401/404/409/422.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ivr_engine.errors import Conflict, NotFound

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
    rate_per_minute: Decimal = Field(ge=0, le=100, decimal_places=2)
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


async def create_expert(request: web.Request) -> web.Response:
    body: NewExpert = await _body(request, NewExpert)
    engine = request.app[ENGINE]
    expert_id = await engine.store.create_expert(
        alias=body.alias,
        phone=body.phone,
        rate=body.rate_per_minute,
        email=body.email,
        language=body.language,
        acceptance_ivr=body.acceptance_ivr,
        taking_calls=body.taking_calls,
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
            body.client_phone, alias=body.client_alias, language=body.language
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
    engine = request.app[ENGINE]
    view = await engine.store.solicit(_int(request, "request_id"))
    engine.dispatcher.poke()
    return web.json_response(view.as_json(), status=202)


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
    app.router.add_get("/healthz", healthz)
    return app
