"""Prompt texts, the media that say a rate, and rendering them into audio with espeak-ng + sox."""

from __future__ import annotations

import shutil
import subprocess
import wave
from decimal import Decimal
from pathlib import Path

import pytest

from ivr_engine.errors import ConfigError
from ivr_engine.prompts import (
    LANGUAGES,
    Prompt,
    load_texts,
    parse_texts,
    rate_media,
    sound_uri,
)
from ivr_engine.sounds import render

SOUNDS_SRC = Path(__file__).resolve().parents[2] / "src" / "ivr_engine" / "prompt_texts"


def _all_prompts(**override: str) -> str:
    lines = [f"{p.value}: text of {p.value}" for p in Prompt if p.value not in override]
    return "\n".join(lines + [f"{name}: {text}" for name, text in override.items()]) + "\n"


def test_every_language_has_every_prompt() -> None:
    texts = load_texts(SOUNDS_SRC)
    assert set(texts) == set(LANGUAGES)
    for lang, by_prompt in texts.items():
        assert set(by_prompt) == set(Prompt), lang
        assert all(text.strip() for text in by_prompt.values()), lang
    assert texts["en"][Prompt.ACCEPT_OR_REFUSE].startswith("Press 1")
    assert texts["it"][Prompt.GOODBYE] == "Arrivederci."


def test_comments_blank_lines_and_spaces_are_ignored() -> None:
    content = "# header\n\n" + _all_prompts().replace("goodbye: ", "goodbye :   ")
    texts = parse_texts(content, "x.txt")
    assert texts[Prompt.GOODBYE] == "text of goodbye"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("# c\nthis line has no colon\n", r"x\.txt:2: expected 'name: text'"),
        ("\n\nhello_there: Hi\n", r"x\.txt:3: unknown prompt name 'hello_there'"),
        ("goodbye:\n", r"x\.txt:1: prompt 'goodbye' has no text"),
        ("goodbye: a\ngoodbye: b\n", r"x\.txt:2: prompt 'goodbye' already given on line 1"),
    ],
)
def test_parse_errors_name_the_line(content: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_texts(content, "x.txt")


def test_missing_prompts_are_listed() -> None:
    content = "\n".join(
        line for line in _all_prompts().splitlines() if not line.startswith(("euro:", "and:"))
    )
    with pytest.raises(ConfigError, match=r"x\.txt: missing prompt\(s\): euro, and"):
        parse_texts(content, "x.txt")


def test_missing_language_file(tmp_path: Path) -> None:
    (tmp_path / "en.txt").write_text(_all_prompts(), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"it\.txt"):
        load_texts(tmp_path)


def test_sound_uri() -> None:
    assert sound_uri(Prompt.ACCEPT_OR_REFUSE) == "sound:ivr-engine/accept_or_refuse"
    assert sound_uri(Prompt.GOODBYE, "custom") == "sound:custom/goodbye"


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (
            "1.50",
            ["offer_at_rate", "number:1", "euro", "and", "number:50", "cents_per_minute"],
        ),
        ("2.00", ["offer_at_rate", "number:2", "euro", "per_minute"]),
        ("2", ["offer_at_rate", "number:2", "euro", "per_minute"]),
        ("0.99", ["offer_at_rate", "number:99", "cents_per_minute"]),
        ("0", ["offer_at_rate", "number:0", "euro", "per_minute"]),
        ("12.05", ["offer_at_rate", "number:12", "euro", "and", "number:5", "cents_per_minute"]),
    ],
)
def test_rate_media(rate: str, expected: list[str]) -> None:
    prefix = "p"
    want = [item if item.startswith("number:") else f"sound:{prefix}/{item}" for item in expected]
    assert rate_media(Decimal(rate), prefix) == want


@pytest.mark.parametrize("rate", ["1.505", "-1", "NaN"])
def test_rate_media_refuses_what_cannot_be_said(rate: str) -> None:
    with pytest.raises(ValueError):
        rate_media(Decimal(rate))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_render_one_language(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SOUNDS_SRC / "it.txt", src / "it.txt")
    out = tmp_path / "out"

    written = render(src, out, languages=("it",))

    assert len(written) == 3 * len(Prompt)
    assert not (out / "en").exists()
    folder = out / "it" / "ivr-engine"
    wav = folder / "accept_or_refuse.wav"
    info = [
        subprocess.run(
            ["sox", "--i", option, str(wav)], capture_output=True, text=True, check=True
        ).stdout.strip()
        for option in ("-r", "-c")
    ]
    assert info == ["8000", "1"]  # 8 kHz mono
    with wave.open(str(wav)) as w:
        samples = w.getnframes()
        assert w.getsampwidth() == 2
    assert samples > 8000  # "Prema 1 per accettare ..." lasts well over a second
    # Raw G.711 is one byte a sample at the same 8 kHz: same sample count as the .wav.
    assert (folder / "accept_or_refuse.ulaw").stat().st_size == samples
    assert (folder / "accept_or_refuse.alaw").stat().st_size == samples
    ulaw = (folder / "accept_or_refuse.ulaw").read_bytes()
    assert len(set(ulaw)) > 50  # speech, not silence (0xFF) or a constant

    assert render(src, out, languages=("it",)) == []  # nothing changed: nothing rendered

    texts = (src / "it.txt").read_text(encoding="utf-8")
    (src / "it.txt").write_text(
        texts.replace("goodbye: Arrivederci.", "goodbye: Arrivederci e a presto."),
        encoding="utf-8",
    )
    (folder / "and.alaw").unlink()
    again = render(src, out, languages=("it",))
    assert {p.relative_to(folder).as_posix() for p in again} == {
        f"{name}.{ext}" for name in ("goodbye", "and") for ext in ("ulaw", "alaw", "wav")
    }
