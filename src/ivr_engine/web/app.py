"""The one aiohttp application: the JSON API, the email-link pages, the panel, the health
and metrics endpoints, behind the proxy and access-log middlewares."""

from __future__ import annotations

from aiohttp import web

from ivr_engine.web import api, health, links, metrics, panel, proxy
from ivr_engine.web.access import AccessLog
from ivr_engine.web.deps import DEPS, WebDeps


def make_app(deps: WebDeps) -> web.Application:
    # Outermost first: the real client is known before the access log and the guards run.
    access = AccessLog(deps.metrics.registry)
    app = web.Application(
        middlewares=[proxy.forwarded, access.middleware, api.guard], client_max_size=64 * 1024
    )
    app[DEPS] = deps
    api.add_routes(app)
    links.add_routes(app)
    health.add_routes(app)
    metrics.add_routes(app)
    panel.setup(app)
    return app
