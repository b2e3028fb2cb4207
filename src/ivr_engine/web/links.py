"""The page behind the link of a missed-call email: the expert asks to be called now.

    GET    /solicit/{request_id}?token=    a confirmation page (the link alone changes nothing)
    POST   /solicit/{request_id}           its form: call me now

The token is signed (ivr_engine.mail.links); no sign-in is needed.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiohttp import web

from ivr_engine.errors import Conflict, LineTestRequired, LinkError, NotFound
from ivr_engine.mail.links import verify_solicit
from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import path_int


def _check_link(request: web.Request, request_id: int, token: str) -> str | None:
    secret = request.app[DEPS].settings.link_secret.get_secret_value().encode()
    try:
        verify_solicit(request_id, token, secret, datetime.now(UTC))
    except LinkError as err:
        return str(err)
    return None


async def solicit_page(request: web.Request) -> web.Response:
    """The link in the missed-call email: a page that asks before triggering the call."""
    request_id = path_int(request, "request_id")
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
    request_id = path_int(request, "request_id")
    form = await request.post()
    token = str(form.get("token", ""))
    problem = _check_link(request, request_id, token)
    if problem:
        return _html(403, "This link cannot be used", problem)
    try:
        await request.app[DEPS].actions.solicit(request_id)
    except LineTestRequired as err:
        return _html(
            409,
            "A line test is needed first",
            f"Calling you now would end your pause, which needs a passed line test first ({err}).",
        )
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/solicit/{request_id}", solicit_page)
    app.router.add_post("/solicit/{request_id}", solicit_from_link)
