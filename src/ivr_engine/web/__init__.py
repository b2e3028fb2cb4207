"""The HTTP side: one aiohttp app built from explicit dependencies (``WebDeps``).

app.py      make_app: routes and middlewares
deps.py     WebDeps, the typed app key handlers read them from
http.py     JSON request/response helpers
api/        the JSON API (bearer token)
links.py    the pages behind the links of emails
live.py     NOTIFY fanned out to the panel's event streams
panel/      the control panel for experts and staff
"""

from ivr_engine.web.app import make_app
from ivr_engine.web.deps import WebDeps

__all__ = ["WebDeps", "make_app"]
