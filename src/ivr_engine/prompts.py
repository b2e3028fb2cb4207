"""What the engine says: prompt names, their texts per language, and the ARI media that say them.

The texts live in ``prompt_texts/{lang}.txt`` inside the package (one ``name: text`` a line,
``#`` starts a comment line) and are rendered to audio by :mod:`ivr_engine.sounds`. At run
time a prompt is played as ``sound:<prefix>/<name>`` with the channel's language passed
separately (ARI's ``lang``), so Asterisk picks ``sounds/<lang>/<prefix>/<name>.<format>``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from importlib.resources import files
from importlib.resources.abc import Traversable

from ivr_engine.errors import ConfigError

LANGUAGES: tuple[str, ...] = ("en", "it")
DEFAULT_PREFIX = "ivr-engine"

CENT = Decimal("0.01")

_LINE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\s*:\s*(?P<text>.*?)\s*$")


class Prompt(StrEnum):
    OFFER_REQUEST_FROM = "offer_request_from"
    OFFER_AT_RATE = "offer_at_rate"
    EURO = "euro"
    AND = "and"
    CENTS_PER_MINUTE = "cents_per_minute"
    # Ends a rate with no cents ("2 euro per minute"); "cents per minute" would be wrong there.
    PER_MINUTE = "per_minute"
    ACCEPT_OR_REFUSE = "accept_or_refuse"
    INVALID_KEY = "invalid_key"
    NO_CHOICE_GOODBYE = "no_choice_goodbye"
    CONNECTING_YOU = "connecting_you"
    CLIENT_EXPERT_DECLINED = "client_expert_declined"
    CLIENT_UNREACHABLE_EXPERT = "client_unreachable_expert"
    REFUSED_GOODBYE = "refused_goodbye"
    SERVICE_UNAVAILABLE = "service_unavailable"
    GOODBYE = "goodbye"
    # The engine must end a call it cannot carry on (a restart before the bridge).
    CALL_INTERRUPTED = "call_interrupted"
    # Played into the bridge a minute before the longest consultation allowed ends.
    CONSULTATION_ENDING = "consultation_ending"
    # The expert's phone menu (the planning number).
    MENU_WELCOME = "menu_welcome"
    ENTER_EXPERT_CODE = "enter_expert_code"
    ENTER_PIN = "enter_pin"
    WRONG_CODE = "wrong_code"
    MAIN_MENU = "main_menu"
    STATUS_OPEN = "status_open"
    STATUS_CLOSED = "status_closed"
    STATUS_PAUSED = "status_paused"
    STATUS_PHONE_OFF = "status_phone_off"
    CLIENTS_WAITING = "clients_waiting"
    ENTER_END_TIME = "enter_end_time"
    INVALID_TIME = "invalid_time"
    DONE = "done"
    CONFIRM_REFUSE_ALL = "confirm_refuse_all"
    ENTER_NEW_PIN = "enter_new_pin"
    ENTER_NEW_PIN_AGAIN = "enter_new_pin_again"
    PINS_DIFFER = "pins_differ"
    TODAY_SLOTS = "today_slots"
    NO_SLOTS_TODAY = "no_slots_today"
    FROM = "from"
    TO = "to"
    # Clients calling a service number (flows/service_line.py, flows/holding.py).
    SERVICE_WELCOME = "service_welcome"
    UNKNOWN_EXPERT_CODE = "unknown_expert_code"
    EXPERT_NOT_TAKING_CALLS = "expert_not_taking_calls"
    NOBODY_AVAILABLE = "nobody_available"
    EXPERT_AVAILABLE_IN = "expert_available_in"
    MINUTES = "minutes"
    HOURS = "hours"
    PRESS_1_CALLBACK_THEN = "press_1_callback_then"
    WITHHELD_NUMBER = "withheld_number"
    ALREADY_IN_LINE = "already_in_line"
    HOLD_POSITION = "hold_position"
    HOLD_IN_LINE = "hold_in_line"
    HOLD_PRESS_1 = "hold_press_1"
    CALLBACK_CONFIRMED = "callback_confirmed"
    HOLD_EXPERT_NO_ANSWER = "hold_expert_no_answer"
    HOLD_EXPERT_DECLINED = "hold_expert_declined"
    HOLD_ENDED = "hold_ended"
    EXPERT_MENU_STAR = "expert_menu_star"
    # The expert's line self-test (flows/line_test.py), and the phone menu's key 0.
    LINE_TEST_CALLING = "line_test_calling"
    LINE_TEST_MESSAGE = "line_test_message"
    LINE_TEST_PASSED = "line_test_passed"
    LINE_TEST_NO_KEY = "line_test_no_key"
    LINE_TEST_IN_CALL = "line_test_in_call"
    LINE_TEST_RUNNING = "line_test_running"
    LINE_TEST_REQUIRED = "line_test_required"
    # To the client who answers, just before the bridge: short, so the expert waits little.
    CLIENT_CONNECTING = "client_connecting"
    # Category requests offered to several experts at once (flows/fanout.py).
    ALREADY_TAKEN = "already_taken"


def parse_texts(content: str, source: str) -> dict[Prompt, str]:
    """Parse one language file; every problem is reported with ``source:line``."""
    texts: dict[Prompt, str] = {}
    seen_at: dict[Prompt, int] = {}
    mentioned: set[Prompt] = set()
    problems: list[str] = []
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            problems.append(f"{source}:{number}: expected 'name: text', got {raw!r}")
            continue
        name, text = match["name"], match["text"]
        try:
            prompt = Prompt(name)
        except ValueError:
            problems.append(f"{source}:{number}: unknown prompt name {name!r}")
            continue
        mentioned.add(prompt)
        if not text:
            problems.append(f"{source}:{number}: prompt {name!r} has no text")
        elif prompt in seen_at:
            problems.append(
                f"{source}:{number}: prompt {name!r} already given on line {seen_at[prompt]}"
            )
        else:
            texts[prompt] = text
            seen_at[prompt] = number
    missing = [p.value for p in Prompt if p not in mentioned]
    if missing:
        problems.append(f"{source}: missing prompt(s): {', '.join(missing)}")
    if problems:
        raise ConfigError("invalid prompt texts:\n  " + "\n  ".join(problems))
    return texts


def shipped_texts() -> Traversable:
    """The folder of the prompt texts shipped inside the package."""
    return files("ivr_engine") / "prompt_texts"


def load_texts(
    sounds_src: Traversable, languages: tuple[str, ...] = LANGUAGES
) -> dict[str, dict[Prompt, str]]:
    """``{lang: {prompt: text}}`` from ``sounds_src/{lang}.txt`` for every language."""
    result: dict[str, dict[Prompt, str]] = {}
    for lang in languages:
        path = sounds_src / f"{lang}.txt"
        try:
            content = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read prompt texts {path}: {err}") from err
        result[lang] = parse_texts(content, str(path))
    return result


def sound_uri(prompt: Prompt, prefix: str = DEFAULT_PREFIX) -> str:
    """ARI media URI of a rendered prompt; the language goes in the play request's ``lang``."""
    return f"sound:{prefix}/{prompt.value}"


def split_rate(rate: Decimal) -> tuple[int, int]:
    """A per-minute rate as (whole euros, cents). Rates are whole cents, never rounded here."""
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"a rate must be a non-negative amount, got {rate}")
    cents_total = rate / CENT
    if cents_total != cents_total.to_integral_value():
        raise ValueError(f"a rate must be a whole number of cents, got {rate}")
    euros, cents = divmod(int(cents_total), 100)
    return euros, cents


def rate_media(rate: Decimal, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Media that say "at your rate of <E> euro and <C> cents per minute".

    The cents are left out when they are zero ("2 euro per minute") and so are the euros when
    they are zero ("99 cents per minute"); numbers use Asterisk's ``number:`` in the channel's
    language.
    """
    euros, cents = split_rate(rate)
    media = [sound_uri(Prompt.OFFER_AT_RATE, prefix)]
    if euros or not cents:
        media += [f"number:{euros}", sound_uri(Prompt.EURO, prefix)]
    if not cents:
        media.append(sound_uri(Prompt.PER_MINUTE, prefix))
        return media
    if euros:
        media.append(sound_uri(Prompt.AND, prefix))
    media += [f"number:{cents}", sound_uri(Prompt.CENTS_PER_MINUTE, prefix)]
    return media
