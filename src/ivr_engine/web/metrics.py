"""GET /metrics: the Prometheus text format, for a bearer token (``IVR_METRICS_TOKEN``, which
reads nothing else, or the API token). The figures carry money and traffic: never
anonymous."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import bearer_matches, error


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    s = deps.settings
    tokens = [s.api_token] + ([s.metrics_token] if s.metrics_token is not None else [])
    if not any(bearer_matches(request, t.get_secret_value()) for t in tokens):
        return error(401, "missing or wrong bearer token")
    await deps.metrics.refresh()
    body = generate_latest(deps.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
