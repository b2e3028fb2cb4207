"""The API described: an OpenAPI 3.1 document of every /api/v1 route, generated from the
pydantic models of the bodies the handlers read and of what they answer (schemas.py).

    GET /api/v1/openapi.json   the document (no token needed: it describes, it holds nothing)
    GET /api/v1/docs           the same, as a page to read in a browser

OPERATIONS is the one list of routes, methods and status codes; a test checks it against
the routes the app really has and every answer against its schema.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from typing import Any

import jinja2
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ivr_engine.web.api import planning, requests
from ivr_engine.web.api import schemas as s

Model = type[BaseModel]
BASE = "/api/v1"
PUBLIC = (f"{BASE}/openapi.json", f"{BASE}/docs")  # the bearer token is not asked here


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # below BASE
    summary: str
    responses: dict[int, Model | None]  # status -> body model (None: no body)
    body: Model | None = None
    body_optional: bool = False
    query: dict[str, tuple[dict[str, Any], bool, str]] = field(default_factory=dict)


def _errors(*codes: int) -> dict[int, Model | None]:
    special: dict[int, Model] = {409: s.ConflictBody, 422: s.InvalidBody}
    return {code: special.get(code, s.ErrorBody) for code in codes}


# Every route answers 401 without the token; a body that is not JSON gets 400 and one that
# does not fit its model 422; an id that is not a number (or past bigint) gets 404.
_ID = 404
_BODY = (400, 422)
EXPERT = "/experts/{expert_id}"
OPERATIONS: tuple[Op, ...] = (
    Op("post", "/experts", "Create an expert", {201: s.Created, **_errors(*_BODY)},
       body=requests.NewExpert),
    Op("post", f"{EXPERT}/requests", "A client asks for an expert: joins the waiting list",
       {201: s.RequestOut, **_errors(*_BODY, _ID, 409)}, body=requests.NewRequest),
    Op("post", "/requests", "A client asks for any expert of a category: offered to several",
       {201: s.CategoryRequestOut, **_errors(*_BODY, _ID, 409)}, body=requests.NewCategoryRequest),
    Op("get", "/requests/{request_id}", "A request, its state and attempts",
       {200: s.RequestOut, **_errors(_ID)}),
    Op("delete", "/requests/{request_id}", "The client leaves the waiting list (lost)",
       {200: s.RequestOut, **_errors(_ID, 409)}),
    Op("post", "/requests/{request_id}/solicit", "The expert asks to be called now",
       {202: s.RequestOut, **_errors(_ID, 409)}),
    Op("get", "/consultations", "Billing details of an expert, newest first",
       {200: s.ConsultationPage, **_errors(422)},
       query={
           "expert_id": ({"type": "integer", "minimum": 0}, True, "the expert"),
           "limit": ({"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, False,
                     "items per page"),
           "before_id": ({"type": "integer", "minimum": 0}, False, "next_before_id of a page"),
       }),
    Op("get", "/consultations/{consultation_id}", "One consultation's billing detail",
       {200: s.ConsultationOut, **_errors(_ID)}),
    Op("get", f"{EXPERT}/availability", "Open now? Why not? The next opening",
       {200: s.AvailabilityOut, **_errors(_ID)}),
    Op("get", f"{EXPERT}/planning", "Weekly slots, timezone and date overrides",
       {200: s.PlanningOut, **_errors(_ID)}),
    Op("put", f"{EXPERT}/planning", "Replace the weekly planning",
       {200: s.PlanningOut, **_errors(*_BODY, _ID)}, body=planning.PlanningBody),
    Op("put", f"{EXPERT}/planning/days/{{day}}", "That date's slots only ([] = closed)",
       {200: s.PlanningOut, **_errors(*_BODY, _ID, 409)}, body=planning.DayBody),
    Op("delete", f"{EXPERT}/planning/days/{{day}}", "That date back to the weekly slots",
       {200: s.PlanningOut, **_errors(422, _ID, 409)}),
    Op("post", f"{EXPERT}/pause", "Pause (default IVR_PAUSE_MINUTES)",
       {200: s.AvailabilityOut, **_errors(*_BODY, _ID)}, body=planning.PauseBody,
       body_optional=True),
    Op("delete", f"{EXPERT}/pause", "Return available",
       {200: s.AvailabilityOut, **_errors(_ID, 409)}),
    Op("put", f"{EXPERT}/channels", "Switch phone, chat, video",
       {200: s.AvailabilityOut, **_errors(*_BODY, _ID, 409)}, body=planning.ChannelsBody),
    Op("put", f"{EXPERT}/pin", "Set the phone menu's PIN (stored as a hash only)",
       {204: None, **_errors(*_BODY, _ID)}, body=planning.PinBody),
    Op("post", f"{EXPERT}/requests/refuse-waiting",
       "Refuse every waiting client, offering the next opening",
       {200: s.RefusedOut, **_errors(_ID)}),
)  # fmt: skip

_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "expert_id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "request_id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "consultation_id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "day": {"type": "string", "format": "date"},
}
_RESPONSE_MODELS: tuple[Model, ...] = (
    s.ErrorBody,
    s.ConflictBody,
    s.InvalidBody,
    s.Created,
    s.RequestOut,
    s.CategoryRequestOut,
    s.AvailabilityOut,
    s.PlanningOut,
    s.RefusedOut,
    s.ConsultationOut,
    s.ConsultationPage,
)


def document(server_url: str = "/") -> dict[str, Any]:
    bodies = sorted({op.body for op in OPERATIONS if op.body}, key=lambda m: m.__name__)
    refs, top = models_json_schema(
        [(m, "validation") for m in bodies] + [(m, "serialization") for m in _RESPONSE_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(BASE + op.path, {})[op.method] = _operation(op, refs)
    paths[PUBLIC[0]] = {"get": _public("The OpenAPI document", "application/json")}
    paths[PUBLIC[1]] = {"get": _public("This document as a page to read", "text/html")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ivr-engine API",
            "version": importlib.metadata.version("ivr-engine"),
            "description": "Experts, waiting lists, availability and billing details. "
            'Every error is JSON {"error": "..."}.',
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "IVR_API_TOKEN"}
            },
        },
    }


def _operation(op: Op, refs: dict[Any, Any]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name, schema in _PATH_PARAMS.items()
        if f"{{{name}}}" in op.path
    ]
    params += [
        {"name": n, "in": "query", "required": req, "schema": sch, "description": doc}
        for n, (sch, req, doc) in op.query.items()
    ]
    error_body = refs[(s.ErrorBody, "serialization")]
    responses: dict[str, Any] = {
        "401": _answer("missing or wrong bearer token", error_body),
        "503": _answer("PostgreSQL is unavailable: nothing was done, try again", error_body),
    }
    for code, model in sorted(op.responses.items()):
        schema = refs[(model, "serialization")] if model is not None else None
        responses[str(code)] = _answer(_REASONS.get(code, "success"), schema)
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_')}".replace("{", "")
        .replace("}", "")
        .replace("-", "_"),
        "parameters": params,
        "responses": dict(sorted(responses.items())),
    }
    if op.body is not None:
        out["requestBody"] = {
            "required": not op.body_optional,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    return out


_REASONS = {
    400: "the body is not JSON",
    404: "no such expert, client, request or consultation",
    409: "a conflict with the state of things",
    422: "the input does not fit the rules",
}


def _answer(description: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _public(summary: str, media: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [],
        "responses": {"200": {"description": summary, "content": {media: {}}}},
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())


def _ref_name(schema: dict[str, Any]) -> str:
    return str(schema.get("$ref", "")).rsplit("/", 1)[-1]


_PAGE = jinja2.Environment(
    loader=jinja2.PackageLoader("ivr_engine.web.api", "."),
    autoescape=True,
).get_template("docs.html")


async def docs_page(request: web.Request) -> web.Response:
    html = _PAGE.render(doc=document(), ref_name=_ref_name)
    return web.Response(text=html, content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_get(PUBLIC[0], openapi_json)
    app.router.add_get(PUBLIC[1], docs_page)
