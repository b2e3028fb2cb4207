"""Which Asterisk dial string reaches a phone number: the longest matching prefix wins."""

from __future__ import annotations

from collections.abc import Mapping

from ivr_engine.errors import ConfigError


def dial_string(number: str, routes: Mapping[str, str]) -> str:
    if not number or any(ch in number for ch in "/&,@ \t\r\n"):
        raise ConfigError(f"not a dialable number: {number!r}")
    best = max((p for p in routes if p != "*" and number.startswith(p)), key=len, default="*")
    return routes[best].replace("{number}", number)
