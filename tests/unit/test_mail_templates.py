"""The email texts: each kind in both languages, amounts and dates as a reader expects."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ivr_engine.errors import TemplateError
from ivr_engine.mail.templates import EN, IT, money, render, when

EARNINGS: dict[str, Any] = {
    "consultation_id": 42,
    "expert_alias": "Tarot Anna",
    "client_alias": "Marco",
    "start": "2024-03-12T14:05:09+01:00",
    "end": "2024-03-12T14:07:14+01:00",
    "billed_seconds": 125,
    "charged_seconds": 180,
    "rate": "1.50",
    "client_price": "4.50",
    "line_type": "mobile",
    "transfer_cost": "0.60",
    "transfer_rule": "0.20/min on mobile lines",
    "commission": "0.77",
    "earnings": "3.13",
    "note": "first consultation",
}
MISSED: dict[str, Any] = {"request_id": 7, "client_alias": "Marco", "attempt": 2, "reason": "busy"}
URL = "https://experts.example.org/solicit/7?token=v1.1710252000.abc"
EXPIRES = datetime(2024, 3, 12, 14, 0, tzinfo=UTC)


def flat(body: str) -> str:
    """The body with its prose unwrapped, so a phrase is found across a line break."""
    return " ".join(body.split())


def test_money_formats() -> None:
    assert money(EN, Decimal("3.13")) == "€3.13"
    assert money(IT, Decimal("3.13")) == "3,13 €"
    assert money(EN, Decimal("1234.5")) == "€1,234.50"
    assert money(IT, Decimal("1234.5")) == "1.234,50 €"
    assert money(IT, Decimal("3")) == "3,00 €"
    assert money(EN, Decimal("-0.20")) == "-€0.20"
    assert money(EN, Decimal("0.0125")) == "€0.0125"  # never rounded away


def test_dates_keep_their_offset() -> None:
    moment = datetime.fromisoformat("2024-03-12T14:05:09+01:00")
    assert when(EN, moment) == "12 March 2024 at 14:05:09 UTC+01:00"
    assert when(IT, moment) == "12 marzo 2024 alle 14:05:09 UTC+01:00"
    assert when(EN, EXPIRES) == "12 March 2024 at 14:00:00 UTC"


def test_earnings_english() -> None:
    subject, body = render("consultation_earnings", "en", EARNINGS, solicit_url=None)
    assert subject == "Your earnings for the consultation with Marco: €3.13"
    for expected in (
        "Hello Tarot Anna",
        "consultation no. 42 with Marco",
        "Start:         12 March 2024 at 14:05:09 UTC+01:00",
        "End:           12 March 2024 at 14:07:14 UTC+01:00",
        "125 s (2 min 5 s)",
        "180 s (3 min)",
        "€1.50/min",
        "Client price:  €4.50",
        "Line type:     mobile",
        "Transfer cost: €0.60 (0.20/min on mobile lines)",
        "Commission:    €0.77",
        "Your earnings: €3.13",
        "Note: first consultation",
    ):
        assert expected in body, expected
    assert "3,13" not in body


def test_earnings_italian() -> None:
    subject, body = render("consultation_earnings", "it", EARNINGS, solicit_url=None)
    assert subject == "Il tuo guadagno per il consulto con Marco: 3,13 €"
    for expected in (
        "Ciao Tarot Anna",
        "consulto n. 42 con Marco",
        "12 marzo 2024 alle 14:05:09 UTC+01:00",
        "12 marzo 2024 alle 14:07:14 UTC+01:00",
        "Tariffa:",
        "1,50 €/min",
        "4,50 €",
        "cellulare",
        "0,60 € (0.20/min on mobile lines)",
        "0,77 €",
        "Il tuo guadagno:            3,13 €",
        "Nota: first consultation",
    ):
        assert expected in body, expected
    assert "€3.13" not in body


def test_earnings_without_note_has_no_note_line() -> None:
    _, body = render("consultation_earnings", "en", {**EARNINGS, "note": ""}, solicit_url=None)
    assert "Note:" not in body


@pytest.mark.parametrize(
    ("language", "subject", "phrases"),
    [
        (
            "en",
            "You missed a call from Marco",
            ["attempt 2", "your line was busy", "still waiting", "12 March 2024 at 14:00:00 UTC"],
        ),
        (
            "it",
            "Hai perso una chiamata di Marco",
            ["tentativo n. 2", "la tua linea era occupata", "ancora in attesa", "12 marzo 2024"],
        ),
    ],
)
def test_missed_call_carries_the_link(language: str, subject: str, phrases: list[str]) -> None:
    got_subject, body = render(
        "expert_missed_call", language, MISSED, solicit_url=URL, link_expires=EXPIRES
    )
    assert got_subject == subject
    assert f"\n{URL}\n" in body  # on a line of its own, never wrapped
    for phrase in phrases:
        assert phrase in flat(body), phrase


def test_missed_call_without_link_is_refused() -> None:
    with pytest.raises(TemplateError, match="solicit link"):
        render("expert_missed_call", "en", MISSED, solicit_url=None)


@pytest.mark.parametrize(
    ("language", "subject", "phrase"),
    [
        ("en", "You missed the request from Marco", "(attempt 3), but you did not answer"),
        ("it", "Hai perso la richiesta di Marco", "(tentativo n. 3), ma non hai risposto"),
    ],
)
def test_request_lost(language: str, subject: str, phrase: str) -> None:
    payload = {**MISSED, "attempt": 3, "reason": "no_answer"}
    got_subject, body = render("expert_missed_request_lost", language, payload, solicit_url=None)
    assert got_subject == subject
    assert phrase in flat(body)
    assert "http" not in body


def test_unknown_reason_gets_a_generic_sentence() -> None:
    _, body = render(
        "expert_missed_request_lost", "it", {**MISSED, "reason": "engine_error"}, solicit_url=None
    )
    assert "la chiamata non è andata a buon fine" in flat(body)


@pytest.mark.parametrize("language", ["de", "", "xx-YY"])
def test_unknown_language_falls_back_to_english(language: str) -> None:
    subject, body = render("consultation_earnings", language, EARNINGS, solicit_url=None)
    assert subject == render("consultation_earnings", "en", EARNINGS, solicit_url=None)[0]
    assert "€3.13" in body


def test_language_code_is_case_insensitive() -> None:
    subject, _ = render("expert_missed_request_lost", "IT", MISSED, solicit_url=None)
    assert subject.startswith("Hai perso")


def test_unknown_kind_raises() -> None:
    with pytest.raises(TemplateError, match="newsletter"):
        render("newsletter", "en", {}, solicit_url=None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"earnings": None}, "no 'earnings'"),
        ({"earnings": "three"}, "not an amount"),
        ({"earnings": "NaN"}, "not an amount"),
        ({"start": "2024-03-12T14:05:09"}, "no timezone"),
        ({"start": "yesterday"}, "not a date"),
        ({"billed_seconds": "2m"}, "not seconds"),
    ],
)
def test_bad_payload_names_the_field(change: dict[str, Any], message: str) -> None:
    payload = {k: v for k, v in {**EARNINGS, **change}.items() if v is not None}
    with pytest.raises(TemplateError, match=message):
        render("consultation_earnings", "en", payload, solicit_url=None)


def test_long_prose_is_wrapped_but_not_the_link() -> None:
    long_alias = "Marco " * 12
    url = "https://experts.example.org/solicit/7?token=" + "x" * 80
    _, body = render(
        "expert_missed_call",
        "en",
        {**MISSED, "client_alias": long_alias.strip()},
        solicit_url=url,
        link_expires=EXPIRES,
    )
    lines = body.splitlines()
    assert url in lines
    assert all(len(line) <= 72 for line in lines if line != url)


def test_refused_client_is_offered_an_appointment() -> None:
    payload = {
        "request_id": 7,
        "client_alias": "Marco",
        "expert_alias": "Anna",
        "proposed_start": "2026-11-24T09:00:00+01:00",
    }
    subject, body = render("client_request_refused", "it", payload, solicit_url=None)
    assert "Anna" in subject and "appuntamento" in body and "24 novembre 2026" in body
    subject, body = render(
        "client_request_refused", "en", {**payload, "proposed_start": ""}, solicit_url=None
    )
    assert "Anna" in subject and "appointment" not in body


MESSAGE: dict[str, Any] = {
    "message_id": 5,
    "expert_alias": "Tarot Anna",
    "client_alias": "Marco",
    "message": "Hello Marco,\n\nhow did the interview go? {Call me} when you like.",
}


@pytest.mark.parametrize(
    ("language", "subject", "phrases"),
    [
        ("en", "A message from Tarot Anna", ["Hello Marco", "Tarot Anna has written to you:"]),
        ("it", "Un messaggio da Tarot Anna", ["Ciao Marco", "Tarot Anna ti ha scritto:"]),
    ],
)
def test_client_message_quotes_the_expert(language: str, subject: str, phrases: list[str]) -> None:
    got_subject, body = render("client_message", language, MESSAGE, solicit_url=None)
    assert got_subject == subject
    for phrase in phrases:
        assert phrase in flat(body), phrase
    # The expert's words as typed, braces included (never used as a format string).
    assert "> Hello Marco,\n>\n> how did the interview go? {Call me} when you like.\n" in body


def test_client_message_tells_not_to_reply() -> None:
    _, body = render("client_message", "it", MESSAGE, solicit_url=None)
    assert "Non rispondere a questa email" in flat(body)
    _, body = render("client_message", "en", MESSAGE, solicit_url=None)
    assert "do not reply" in flat(body)


def test_client_message_long_lines_are_quoted_and_links_kept_whole() -> None:
    url = "https://example.org/" + "x" * 90
    text = "word " * 40 + url
    _, body = render("client_message", "en", {**MESSAGE, "message": text}, solicit_url=None)
    quoted = [line for line in body.splitlines() if line.startswith(">")]
    assert len(quoted) > 1 and f"> {url}" in quoted
    assert all(len(line) <= 72 for line in body.splitlines() if url not in line)


def test_client_message_without_text_is_refused() -> None:
    payload = {k: v for k, v in MESSAGE.items() if k != "message"}
    with pytest.raises(TemplateError, match="no 'message'"):
        render("client_message", "en", payload, solicit_url=None)


@pytest.mark.parametrize(
    ("language", "subject", "phrases"),
    [
        ("en", "Your phone menu is locked after wrong PINs", ["3 wrong PINs", "at least 6"]),
        ("it", "Il tuo menu telefonico è bloccato dopo PIN errati", ["3 PIN errati", "almeno 6"]),
    ],
)
def test_pin_locked_tells_the_expert_until_when_and_what_to_do(
    language: str, subject: str, phrases: list[str]
) -> None:
    payload = {"expert_alias": "Anna", "wrong_pins": 3, "locked_until": "2026-11-23T20:15:00+00:00"}
    got_subject, body = render("expert_pin_locked", language, payload, solicit_url=None)
    assert got_subject == subject
    assert "Anna" in body and "20:15:00 UTC" in body
    assert all(p in body.replace("\n", " ") for p in phrases), body
