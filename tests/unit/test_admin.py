"""The admin pages' texts built at run time: every state, category and line type shown."""

from __future__ import annotations

import ivr_engine.web.panel  # noqa: F401  (registers every page's texts)
from ivr_engine.domain.money import LineType
from ivr_engine.store.live import ACTIVE
from ivr_engine.web.panel import i18n
from ivr_engine.web.panel.admin_experts import CATEGORIES, LANGUAGES

FIGURES = ("received", "answered", "refused", "lost", "speed", "abandonment")


def test_every_text_the_admin_pages_build_exists_in_both_languages() -> None:
    keys = [
        *(f"admin.state.{s}" for s in ACTIVE),
        *(f"admin.category.{c}" for c in CATEGORIES),
        *(f"admin.line.{line.value}" for line in LineType),
        *(f"admin.language.{lang}" for lang in LANGUAGES),
        *(f"admin.{part}.{f}" for part in ("fig", "legend") for f in FIGURES),
        "admin.done.created",
        "admin.done.acceptance",
    ]
    assert [k for k in keys if not i18n.known(k)] == []


def test_the_cartomancy_category_is_the_one_the_billing_knows() -> None:
    from ivr_engine.domain.money import CARTOMANCY

    assert CARTOMANCY in CATEGORIES
