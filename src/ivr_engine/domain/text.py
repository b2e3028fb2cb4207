"""What text people give the engine may hold: no control characters.

A name or an address ends up in an email header, a log line, a SIP caller name or a
PostgreSQL ``text`` column. A line break there forges a header (or makes the email
impossible to build), a NUL is refused by PostgreSQL, a lone surrogate cannot be encoded
at all. None of them has a use in anything a person types into a field, so they are
refused where the text comes in (the API, the panel), never silently dropped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

# Cc: C0 and C1 controls (TAB, CR, LF, NUL, DEL...); Cs: lone surrogates; Zl, Zp: the
# Unicode line and paragraph separators, which Python's email package also breaks lines on.
_REFUSED = frozenset({"Cc", "Cs", "Zl", "Zp"})


def control_characters(text: str) -> list[str]:
    """The refused characters of ``text``, written as ``U+000A``; empty when it is clean."""
    return sorted({f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in _REFUSED})


def check_text(text: str, what: str) -> str:
    """``text`` itself, or ValueError naming the field and the characters refused."""
    found = control_characters(text)
    if found:
        raise ValueError(f"{what} holds control characters ({', '.join(found)})")
    return text


def strings_in(value: object) -> Iterator[tuple[str, str]]:
    """Every string of a JSON value, keys included, with where it is (``weekly.monday.0``).

    Iterative: a body nested a thousand levels deep must not exhaust the stack here.
    """
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where or "body", item
        elif isinstance(item, dict):
            for key, inner in item.items():
                here = f"{where}.{key}" if where else str(key)
                yield here, str(key)
                stack.append((here, inner))
        elif isinstance(item, list):
            stack.extend(
                (f"{where}.{i}" if where else str(i), inner) for i, inner in enumerate(item)
            )
