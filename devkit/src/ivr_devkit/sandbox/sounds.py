"""Putting the engine's rendered prompts where the chrooted Asterisk looks for sounds.

Asterisk finds ``Playback(ivr-engine/foo)`` for a channel of language ``it`` at
``<astdatadir>/sounds/it/ivr-engine/foo.<format>``. Debian makes ``sounds/en`` a symlink
through /etc/alternatives and installs Italian as ``it_IT_m_Carlo`` with no ``it`` at all,
so paths inside the root are resolved the way the chrooted process would see them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path, PurePosixPath

from ivr_devkit.errors import SandboxError

SOUNDS_DIR = "/usr/share/asterisk/sounds"
_VOICE_DIR = re.compile(r"^([a-z]{2})_[A-Z]{2}_")


def resolve_in_root(root: Path, inner: str) -> Path:
    """Host path of ``inner`` as seen from inside ``root``: absolute symlinks stay inside."""
    pending = list(PurePosixPath(inner).parts[1:])
    current = root
    hops = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / name
        if not candidate.is_symlink():
            current = candidate
            continue
        hops += 1
        if hops > 40:
            raise SandboxError(f"too many symlinks resolving {inner} in {root}")
        target = PurePosixPath(os.readlink(candidate))
        if target.is_absolute():
            current = root
            pending = list(target.parts[1:]) + pending
        else:
            pending = list(target.parts) + pending
    return current


def link_languages(root: Path) -> None:
    """Give every installed voice a plain language name (it -> it_IT_m_Carlo) if it lacks one."""
    sounds = resolve_in_root(root, SOUNDS_DIR)
    if not sounds.is_dir():
        return
    for entry in sorted(sounds.iterdir()):
        match = _VOICE_DIR.match(entry.name)
        if match is None or not entry.is_dir():
            continue
        alias = sounds / match.group(1)
        if not alias.exists() and not alias.is_symlink():
            alias.symlink_to(entry.name)


def install_prompts(root: Path, source: Path) -> list[str]:
    """Copy ``source/{lang}/{dir}/*`` to the chroot's ``sounds/{lang}/{dir}/``, replacing it.

    Returns the ``{lang}/{dir}`` pairs installed.
    """
    installed: list[str] = []
    if not source.is_dir():
        return installed
    for lang_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        target_lang = resolve_in_root(root, f"{SOUNDS_DIR}/{lang_dir.name}")
        for prompt_dir in sorted(p for p in lang_dir.iterdir() if p.is_dir()):
            target = target_lang / prompt_dir.name
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(prompt_dir, target)
            installed.append(f"{lang_dir.name}/{prompt_dir.name}")
    return installed
