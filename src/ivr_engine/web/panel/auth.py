"""Sign-in, sign-out and the guard in front of every panel page.

The guard (a middleware) loads the session from its cookie, picks the language, refuses a
POST whose CSRF token does not match the session's (or, on the sign-in form, the
double-submit cookie's), sends anonymous readers to /login, and keeps experts out of the
admin pages. Wrong password and unknown email get the same answer, in the same time.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import asyncpg
import structlog
from aiohttp import web

from ivr_engine.errors import NotFound
from ivr_engine.store import accounts
from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import Handler
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.fields import safe_next
from ivr_engine.web.panel.render import page, problem, redirect, text
from ivr_engine.web.panel.session import (
    ACCOUNT,
    LANG,
    LOGIN_CSRF,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Account,
)

log = structlog.get_logger(__name__)

_GUARDED = ("/panel", "/admin", "/logout")
_PANEL_PATHS = (*_GUARDED, "/login", "/lang/")


def _home(who: Account) -> str:
    return "/admin" if who.role == "admin" else "/panel"


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path != "/" and not path.startswith(_PANEL_PATHS):
        return await handler(request)
    try:
        return await _guarded(request, handler)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        # PostgreSQL is away: a page that says so (nothing was half-done: each change is
        # one transaction), never a stack trace.
        log.warning("panel.database_unavailable", path=path, error=repr(err))
        request.setdefault(LANG, i18n.choose(request, None))
        return problem(request, 503, "error.unavailable")


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    pool = request.app[DEPS].pool
    token = request.cookies.get(SESSION_COOKIE, "")
    who = await accounts.session(pool, token) if token else None
    request[ACCOUNT] = who
    request[LANG] = i18n.choose(request, who.language if who else None)
    if request.method not in ("GET", "HEAD") and not await _csrf_ok(request, who):
        return problem(request, 403, "error.csrf")
    if path == "/":
        raise web.HTTPFound(_home(who) if who else "/login")
    if path.startswith(_GUARDED) and who is None:
        if request.method == "GET":
            raise web.HTTPFound("/login?next=" + quote(path))
        return problem(request, 403, "error.forbidden")
    if who is not None and path.startswith("/admin") and who.role != "admin":
        return problem(request, 403, "error.forbidden")
    if who is not None and path.startswith("/panel") and who.expert_id is None:
        if request.method == "GET":
            raise web.HTTPFound("/admin")
        return problem(request, 403, "error.forbidden")
    try:
        response = await handler(request)
    except NotFound:  # e.g. the expert was removed while signed in: a page, not JSON
        response = problem(request, 404, "error.not_found")
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    return response


def _origin_ok(request: web.Request, origin: str) -> bool:
    """A browser's ``Origin`` must be this site: ``IVR_PUBLIC_URL``'s origin (what a reverse
    proxy serves, whatever Host header it forwards), or the host the request was sent to."""
    given = urlsplit(origin)
    public = urlsplit(request.app[DEPS].settings.public_url)
    if (given.scheme, given.netloc) == (public.scheme, public.netloc):
        return True
    return given.netloc == request.host


async def _csrf_ok(request: web.Request, who: Account | None) -> bool:
    origin = request.headers.get("Origin")
    if origin and origin != "null" and not _origin_ok(request, origin):
        return False
    given = request.headers.get("X-CSRF-Token", "")
    if not given and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        given = str((await request.post()).get("csrf", ""))
    expected = who.csrf if who is not None else request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(given and expected) and hmac.compare_digest(given, expected)


def _cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    s = request.app[DEPS].settings
    response.set_cookie(
        name,
        value,
        max_age=int(s.session_hours * 3600),
        path="/",
        httponly=True,
        secure=s.panel_secure_cookie,
        samesite="Lax",
    )


def _safe_next(target: str, who: Account) -> str:
    return safe_next(target) or _home(who)


async def login_form(request: web.Request) -> web.Response:
    who = request.get(ACCOUNT)
    if who is not None:
        raise web.HTTPFound(_home(who))
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    request[LOGIN_CSRF] = csrf
    notice = "login.signed_out" if "bye" in request.query else None
    response = page(
        request,
        "login.html",
        errors={},
        email="",
        notice_key=notice,
        next=request.query.get("next", ""),
    )
    _cookie(request, response, LOGIN_CSRF_COOKIE, csrf)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    s = deps.settings
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()
    password = str(form.get("password", ""))
    target = str(form.get("next", ""))
    request[LOGIN_CSRF] = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    errors = {}
    if not email:
        errors["email"] = text(request, "login.required")
    if not password:
        errors["password"] = text(request, "login.required")
    if errors:
        return page(
            request,
            "login.html",
            status=422,
            errors=errors,
            email=email,
            notice_key=None,
            next=target,
        )
    now = datetime.now(UTC)
    # request.remote is the client behind a trusted proxy (web/proxy.py), else the peer.
    keys = [f"email:{email}", f"ip:{request.remote or '?'}"]
    window = timedelta(minutes=s.login_lockout_minutes)
    if await accounts.locked_until(deps.pool, keys, now) is not None:
        return page(
            request,
            "login.html",
            status=429,
            email=email,
            notice_key=None,
            next=target,
            errors={"form": text(request, "login.locked", minutes=s.login_lockout_minutes)},
        )
    who = await accounts.verify(deps.pool, email, password)
    if who is None:
        await accounts.failed(deps.pool, keys, now, limit=s.login_max_failures, window=window)
        return page(
            request,
            "login.html",
            status=401,
            email=email,
            notice_key=None,
            next=target,
            errors={"form": text(request, "login.wrong")},
        )
    await accounts.succeeded(deps.pool, keys[:1])
    token = await accounts.open_session(deps.pool, who.id, timedelta(hours=s.session_hours))
    response = redirect(_safe_next(target, who))
    _cookie(request, response, SESSION_COOKIE, token)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        await accounts.close_session(request.app[DEPS].pool, token)
    response = redirect("/login?bye=1")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def switch_language(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    if lang not in i18n.LANGUAGES:
        raise web.HTTPNotFound()
    response = redirect(safe_next(request.query.get("next", "/")) or "/")
    response.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Lax")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/lang/{lang}", switch_language)
