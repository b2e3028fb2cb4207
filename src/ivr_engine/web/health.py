"""Liveness, readiness and health, for a process supervisor, a load balancer and a person.

    GET /livez    200 while the process answers HTTP at all (restart it if not)
    GET /readyz   200 when it can take work: PostgreSQL answers, ARI is connected and the
                  engine is not draining; else 503 (send no traffic, do not restart)
    GET /healthz  200 when PostgreSQL, ARI and AMI are all up, else 503

Anonymous callers get only ``{"status": ...}``: no versions, start times or call counts.
With the API token (``Authorization: Bearer``) /healthz and /readyz add their checks.
"""

from __future__ import annotations

from aiohttp import web

from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import bearer_matches


def _trusted(request: web.Request) -> bool:
    return bearer_matches(request, request.app[DEPS].settings.api_token.get_secret_value())


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    report = await request.app[DEPS].health()
    ready = bool(report["ready"])
    body: dict[str, object] = {"status": "ready" if ready else "not_ready"}
    if _trusted(request):
        body["checks"] = {k: report[k] for k in ("database", "ari", "draining")}
    return web.json_response(body, status=200 if ready else 503)


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[DEPS].health()
    ok = bool(report["ok"])
    body = report if _trusted(request) else {"status": "ok" if ok else "unavailable"}
    return web.json_response(body, status=200 if ok else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/healthz", healthz)
