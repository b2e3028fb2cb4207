"""Who is asking: the signed-in account of a panel request, and its CSRF token.

Request keys set by the middleware (panel/auth.py) and read by every page handler.
"""

from __future__ import annotations

from aiohttp import web

from ivr_engine.store.accounts import Account

ACCOUNT: web.RequestKey[Account | None] = web.RequestKey("ivr_account")
LANG: web.RequestKey[str] = web.RequestKey("ivr_lang")
LOGIN_CSRF: web.RequestKey[str] = web.RequestKey("ivr_login_csrf")
SESSION_COOKIE = "ivr_session"
LOGIN_CSRF_COOKIE = "ivr_login_csrf"

__all__ = ["ACCOUNT", "LANG", "LOGIN_CSRF", "Account", "account", "expert_id"]


def account(request: web.Request) -> Account:
    found: Account | None = request.get(ACCOUNT)
    if found is None:  # the middleware lets no anonymous request reach a page handler
        raise web.HTTPFound("/login")
    return found


def expert_id(request: web.Request) -> int:
    """The signed-in expert's id: every /panel query is scoped by it, never by the URL."""
    who = account(request)
    if who.expert_id is None:
        raise web.HTTPForbidden()
    return who.expert_id
