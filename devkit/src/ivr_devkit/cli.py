"""The ``ivr-engine`` commands the development kit runs: ``demo`` and ``sandbox``.

``ivr_engine.cli`` parses the command line and hands these two commands over here; errors
are :class:`~ivr_engine.errors.IvrError`, which it prints as one line.
"""

from __future__ import annotations

import asyncio
import json

SANDBOX_ACTIONS: tuple[str, ...] = ("build", "up", "down", "status", "env")


def demo(*, keep: bool = False) -> int:
    """``ivr-engine demo [--keep]``: one scripted consultation on the sandbox."""
    from ivr_devkit.demo import run_demo
    from ivr_engine import log

    log.configure("console", "warning")
    return asyncio.run(run_demo(keep=keep))


def sandbox(action: str) -> int:
    """``ivr-engine sandbox build|up|down|status|env``."""
    from ivr_devkit.sandbox import Sandbox

    box = Sandbox()
    if action == "build":
        box.build()
    elif action == "up":
        info = box.up()
        print(json.dumps(info.engine_env(), indent=2))
    elif action == "env":
        info = box.up()
        for key, value in info.engine_env().items():
            print(f"{key}='{value}'" if key == "IVR_DIAL_ROUTES" else f"{key}={value}")
    elif action == "down":
        box.down()
    elif action == "status":
        print(json.dumps(box.status(), indent=2, default=str))
    else:
        raise ValueError(f"unknown sandbox action {action!r}")
    return 0
