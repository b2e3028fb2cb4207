"""The JSON API under /api/v1: a bearer token in front of every route, errors as JSON.

Every /api route needs ``Authorization: Bearer <IVR_API_TOKEN>``. Errors are JSON
``{"error": "..."}`` with 400/401/404/409/422.

    requests.py   experts, waiting lists, consultations
    planning.py   an expert's availability, pause, channels, PIN, refusing every client
    schemas.py    what the routes answer, as pydantic models
    openapi.py    the OpenAPI 3.1 document (/api/v1/openapi.json) and its page (/api/v1/docs)
"""

from __future__ import annotations

import hmac

from aiohttp import web

from ivr_engine.errors import Conflict, NotFound, PlanningError
from ivr_engine.web.api import openapi, planning, requests
from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import Handler, error


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The bearer token on /api; the store's errors as 404/409/422 on every route."""
    if request.path.startswith("/api/") and request.path not in openapi.PUBLIC:
        token = request.app[DEPS].settings.api_token.get_secret_value()
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return error(401, "missing or wrong bearer token")
    try:
        return await handler(request)
    except NotFound as err:
        return error(404, str(err))
    except Conflict as err:
        return error(409, str(err))
    except PlanningError as err:
        return error(422, str(err))


def add_routes(app: web.Application) -> None:
    requests.add_routes(app)
    planning.add_routes(app)
    openapi.add_routes(app)
