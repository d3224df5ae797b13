"""The service's logging: every line through one formatter that escapes control characters.

A path, a parameter or a configured name may carry any character (`GET /static/app.js%00.png`);
written raw, a NUL, a terminal escape or a line feed would corrupt the log, drive the terminal that
shows it or forge a line. `EscapingFormatter` writes each control character of a line as its escape
(`\\x00`, `\\x1b`, `\\n`); a traceback keeps its line feeds. It is the formatter of Litestar's logging
configuration (`create_app`), which sets up the root logger: this package's loggers propagate to it,
and so do uvicorn's, which `cost-api serve` leaves unconfigured (access lines too, were they on).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar.logging.config import LoggingConfig

from cost_api.text import escape

FORMAT = "%(levelname)s - %(asctime)s - %(name)s - %(module)s - %(message)s"  # Litestar's own


class EscapingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return escape(super().formatException(ei), keep_line_feeds=True)

    def formatStack(self, stack_info: str) -> str:
        return escape(super().formatStack(stack_info), keep_line_feeds=True)


def logging_config() -> LoggingConfig:
    """Litestar's default set-up (the root and `litestar` loggers, INFO, to stderr) with this formatter."""
    return LoggingConfig(formatters={"standard": {"()": EscapingFormatter, "fmt": FORMAT}})


def drain() -> None:
    """Wait until every line logged so far is written. Litestar's handlers write from a thread of
    their own (a queue listener): a line printed to stderr straight after a log call could otherwise
    land in the middle of one."""
    for logger in (logging.getLogger(), logging.getLogger("litestar")):
        for handler in logger.handlers:
            queue: Any = getattr(handler, "queue", None)
            if getattr(handler, "listener", None) is not None and hasattr(queue, "join"):
                queue.join()
