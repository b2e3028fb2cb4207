"""scripts/check_layers.py: passes on the real tree, and fails on a cycle (even one hidden
in a function or under TYPE_CHECKING), an upward import and an import of the dev kit."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layers", ROOT / "scripts/check_layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layers"] = module
    spec.loader.exec_module(module)
    return module


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "ivr_engine" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_the_engine_has_no_cycle_and_respects_its_layers() -> None:
    assert _script().check(ROOT / "src", "ivr_engine") == []


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "web/__init__.py": "",
            "web/a.py": "def f():\n    from ivr_engine.web import b\n",
            "web/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from ivr_engine.web.a import f\n",
        },
    )
    problems = _script().check(src, "ivr_engine")
    assert problems == ["import cycle: ivr_engine.web.a -> ivr_engine.web.b"]


def test_an_upward_import_and_the_dev_kit_are_refused(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "store/__init__.py": "from ivr_engine.web import app\n",
            "web/__init__.py": "",
            "web/app.py": "from . import helpers\n",
            "web/helpers.py": "import ivr_devkit.sandbox\n",
            "stray.py": "",
        },
    )
    problems = _script().check(src, "ivr_engine")
    assert any("ivr_engine.store (store) imports ivr_engine.web.app (web)" in p for p in problems)
    assert any("the runtime imports the dev kit (ivr_devkit.sandbox)" in p for p in problems)
    assert any("module ivr_engine.stray has no layer" in p for p in problems)
    assert not any("cycle" in p for p in problems)
