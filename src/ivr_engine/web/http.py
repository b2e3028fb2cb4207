"""Request and response helpers shared by every JSON route: errors are ``{"error": ...}``."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ivr_engine.domain.numbers import NumberRefused
from ivr_engine.domain.text import control_characters, strings_in

PHONE = r"^\+?[0-9]{3,20}$"  # a dialable number as typed: digits, maybe a leading +
# One address or none: it becomes a To: header, so nothing that could start a second one.
EMAIL = r"^([^@\s\",;<>()\[\]\\]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63})?$"
BIGINT = 2**63 - 1  # the largest id PostgreSQL holds

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def refused_number(field: str, err: NumberRefused) -> web.Response:
    """422 for a number the engine may not dial, with the reason (domain/numbers.py)."""
    body = {"error": f"{field}: {err}", "reason": err.reason.value}
    return web.json_response(body, status=422)


def bearer_matches(request: web.Request, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time; an empty token never
    matches."""
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def _raise(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


async def read_body(request: web.Request, model: type[BaseModel]) -> Any:
    """The JSON body validated by ``model``: 400 if it is not JSON, 422 if it does not fit.

    Nesting past what Python's parser takes (``[[[[…``), a number of more than 4300 digits
    and bytes that are not UTF-8 are "not JSON" too; a string holding a control character
    (a line break in a name, a NUL) does not fit any field (domain/text.py).
    """
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):  # JSONDecodeError is a ValueError
        raise _raise(web.HTTPBadRequest, "body is not valid JSON") from None
    for where, text in strings_in(data):
        if found := control_characters(text):
            message = f"{where}: control characters are not allowed ({', '.join(found)})"
            raise _raise(web.HTTPUnprocessableEntity, message)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
        )
        raise _raise(web.HTTPUnprocessableEntity, details) from None


def path_int(request: web.Request, name: str) -> int:
    """A number in the path; anything else is a 404 (no such resource)."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or int(raw) > BIGINT:
        raise _raise(web.HTTPNotFound, f"{name} must be a number")
    return int(raw)
