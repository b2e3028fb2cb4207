"""The one aiohttp application: the JSON API, the email-link pages, the panel, /healthz."""

from __future__ import annotations

from aiohttp import web

from ivr_engine.web import api, links, panel
from ivr_engine.web.deps import DEPS, WebDeps


async def healthz(request: web.Request) -> web.Response:
    """PostgreSQL, ARI and AMI status (no auth): 200 when all three are up, else 503."""
    report = await request.app[DEPS].health()
    return web.json_response(report, status=200 if report["ok"] else 503)


def make_app(deps: WebDeps) -> web.Application:
    app = web.Application(middlewares=[api.guard], client_max_size=64 * 1024)
    app[DEPS] = deps
    api.add_routes(app)
    links.add_routes(app)
    app.router.add_get("/healthz", healthz)
    panel.setup(app)
    return app
