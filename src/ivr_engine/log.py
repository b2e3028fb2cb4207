"""structlog set-up: JSON lines when not on a terminal, readable lines on one.

Flows bind ``request_id``/``channel_id`` with ``structlog.contextvars`` so that every line of
a call carries them. The libraries' own logging (aiohttp, asyncpg, panoramisk, asyncio's
"exception was never retrieved") goes through the same processors: the root logger of the
standard library gets one handler rendering with structlog, so a traceback from a library
is one JSON line with an ``exception`` field, never loose text in the log.
"""

from __future__ import annotations

import logging
import sys

import structlog

_HANDLER_NAME = "ivr-engine"


def configure(fmt: str = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Each module's logger is built once, at its first line: without it every call
        # (a filtered debug one too) rebuilds the bound logger. Configure before logging.
        cache_logger_on_first_use=True,
    )
    _route_stdlib(shared, renderer, numeric)


def _route_stdlib(
    shared: list[structlog.typing.Processor], renderer: structlog.typing.Processor, level: int
) -> None:
    """Every standard-library log record, rendered by structlog to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
