"""One access-log line per HTTP request, and the HTTP figures of /metrics.

The line carries the method, the path without its query string (signed links carry their
token there) and with long digit runs masked (no full phone number), the route pattern,
the status, the time taken and the client's address; never a header, a cookie or a body.
"""

from __future__ import annotations

import asyncio
import re
import time

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from ivr_engine.web.http import Handler

log = structlog.get_logger("ivr_engine.http")

_LONG_NUMBER = re.compile(r"\+?\d{7,}")


def mask(path: str) -> str:
    """``/x/+393331234567`` -> ``/x/…567``: a number long enough to be a phone number keeps
    its last three digits only."""
    return _LONG_NUMBER.sub(lambda m: "…" + m.group()[-3:], path)


def route_of(request: web.Request) -> str:
    """The route's pattern (``/api/v1/requests/{request_id}``): a label of bounded count."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


class AccessLog:
    """The middleware; its counters live in the engine's metrics registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ivr_http_requests",
            "HTTP requests answered, by method, route pattern and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "ivr_http_request_duration_seconds",
            "Time to answer an HTTP request (a live page's event stream: its whole life)",
            ["route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away first
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_of(request)
            self.requests.labels(request.method, route, str(status)).inc()
            self.seconds.labels(route).observe(elapsed)
            log.info(
                "http.access",
                method=request.method,
                path=mask(request.path),
                route=route,
                status=status,
                ms=round(elapsed * 1000, 1),
                client=request.remote,
            )
