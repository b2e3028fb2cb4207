"""Every text a panel template asks for exists in English and in Italian."""

from __future__ import annotations

import re
from pathlib import Path

import ivr_engine.web.panel  # imports every page module, so that their texts register
from ivr_engine.web.panel import i18n

TEMPLATES = Path(ivr_engine.web.panel.__file__).parent / "templates"
# t("key") or t('key'), with or without arguments; keys built at run time ("reason." ~ x)
# are checked by the test below.
CALL = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.]*[a-z0-9_])["']""")


def test_every_template_text_is_translated() -> None:
    missing = []
    for path in sorted(TEMPLATES.glob("*.html")):
        for key in CALL.findall(path.read_text()):
            if not i18n.known(key):
                missing.append(f"{path.name}: {key}")
    assert not missing, missing


def test_reasons_are_translated() -> None:
    from ivr_engine.domain.planning import Reason

    assert all(i18n.known(f"reason.{r.value}") for r in Reason)


def test_translation_fills_values_and_falls_back_to_english() -> None:
    assert i18n.translate("it", "login.locked", minutes=15) == (
        "Troppi tentativi. Riprova tra 15 minuti."
    )
    assert i18n.translate("fr", "nav.calls") == "Calls"


def test_registering_a_text_in_one_language_only_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="differ"):
        i18n.register(en={"x.only_en": "a"}, it={})
