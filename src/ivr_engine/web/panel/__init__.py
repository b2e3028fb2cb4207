"""The web control panel, served by the engine's own aiohttp server.

Expert pages under /panel (calls, client, availability, consultation types,
consultations), the service staff's pages under /admin, sign-in at /login. Pages are
server-rendered (Jinja2, autoescaped) with a little JavaScript for live updates.

    auth.py           sign in/out, sessions, CSRF, the guard in front of every page
    calls.py          the Calls page and its live fragment and event stream
    clients.py        one client: history with this expert, notes, a message
    availability.py   weekly planning, today, pause, channels
    line_test.py      the line self-test card and its button (on the Availability page)
    slot_form.py      slots as typed in a form, checked by the planning rules
    profile.py        phone number (line type, transfer cost), rate, PIN
    consultations.py  the expert's consultations and their billing detail
    admin.py          live calls across experts, the day's figures
    admin_experts.py  create and edit experts, the accept-by-keypress switch
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ivr_engine.web.panel import (
    admin,
    auth,
    availability,
    calls,
    clients,
    consultations,
    line_test,
    profile,
)

STATIC = Path(__file__).parent / "static"


def setup(app: web.Application) -> None:
    app.middlewares.append(auth.guard)
    auth.add_routes(app)
    calls.add_routes(app)
    clients.add_routes(app)
    availability.add_routes(app)
    line_test.add_routes(app)
    profile.add_routes(app)
    consultations.add_routes(app)
    admin.add_routes(app)
    app.router.add_get("/", _root)
    app.router.add_static("/static", STATIC, append_version=False)


async def _root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/login")  # the guard sends a signed-in reader to their home first
