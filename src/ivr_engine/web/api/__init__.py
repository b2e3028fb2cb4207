"""The JSON API under /api/v1: a bearer token in front of every route, errors as JSON.

Every /api route needs ``Authorization: Bearer <IVR_API_TOKEN>``. Errors are JSON
``{"error": "..."}`` with 400/401/404/405/409/413/422, and 503 while PostgreSQL is away:
whatever goes wrong under /api, the answer is JSON (a bug is a JSON 500, and logged).

    requests.py   experts, waiting lists, consultations
    planning.py   an expert's availability, pause, channels, PIN, refusing every client
    schemas.py    what the routes answer, as pydantic models
    openapi.py    the OpenAPI 3.1 document (/api/v1/openapi.json) and its page (/api/v1/docs)
"""

from __future__ import annotations

import hmac

import asyncpg
import structlog
from aiohttp import web

from ivr_engine.errors import Conflict, LineTestRequired, NotFound, PlanningError
from ivr_engine.web.api import openapi, planning, requests
from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import Handler, error

log = structlog.get_logger(__name__)
# PostgreSQL cannot be reached or its connection broke: try again later, nothing half-done
# (every change is one transaction).
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The bearer token on /api; the store's errors as 404/409/422 on every route; under
    /api every other failure as JSON too (aiohttp's own answers are plain text)."""
    api = request.path.startswith("/api/")
    if api and request.path not in openapi.PUBLIC:
        token = request.app[DEPS].settings.api_token.get_secret_value()
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return error(401, "missing or wrong bearer token")
    try:
        return await handler(request)
    except NotFound as err:
        return error(404, str(err))
    except LineTestRequired as err:  # IVR_LINE_TEST_REQUIRED_HOURS: going available refused
        return web.json_response({"error": str(err), "reason": err.reason}, status=409)
    except Conflict as err:
        return error(409, str(err))
    except PlanningError as err:
        return error(422, str(err))
    except web.HTTPException as exc:
        if not api or exc.content_type == "application/json" or exc.status < 400:
            raise
        # No such route, method not allowed (its Allow header kept), body too large.
        response = error(exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except _UNAVAILABLE as err:
        if not api:
            raise
        log.warning("api.database_unavailable", path=request.path, error=repr(err))
        return error(503, "the database is unavailable: try again in a moment")
    except Exception:
        if not api:
            raise
        log.exception("api.failed", path=request.path)
        return error(500, "internal error")


def add_routes(app: web.Application) -> None:
    requests.add_routes(app)
    planning.add_routes(app)
    openapi.add_routes(app)
