"""Logs as JSON lines (or plain text for humans), with the request id when there is one.

Both formats are built for the access log's rate (one line per request): the JSON one
serializes with orjson instead of walking the record through a generic JSON formatter, and
the text one escapes control characters, so a ``%0A`` in a path cannot forge a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime

import orjson

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode()


class JsonLineFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", **extra}`` as one JSON line (control characters escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class EscapingTextFormatter(logging.Formatter):
    """Plain text; control characters in the message are shown escaped (``\\n``), never acted on."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return _CONTROL_CHARACTERS.sub(_escape, super().formatMessage(record))


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(EscapingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our access log replaces uvicorn's (it has the route template and the request id).
    logging.getLogger("uvicorn.access").disabled = True
