"""The access log: one line per request, handed to stdout in batches.

Through ``logging`` a line cost about 90 µs of a busy server's core (a LogRecord, the handler's
lock, the formatter, and a write to stdout for every line, which ``PYTHONUNBUFFERED`` sends to
the OS at once): as much as a third of a float prediction. Here a line is built in one call and
kept; the kept lines go out in one write when ``max_lines`` have gathered or ``interval_s``
after the first of them, whichever comes first, and when the service stops. The lines are the
ones ``logging_setup`` writes for the service's other logs (same fields, same two formats), as
the ``mnist_backend.access`` logger (``LOG_LEVEL=warning`` still silences them).

What it costs in return: an access line reaches stdout up to ``interval_s`` after its request,
after log lines written in between; a process killed outright (SIGKILL, out of memory) loses the
lines of its last ``interval_s``. nginx's ``access_log ... buffer= flush=`` makes the same trade.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TextIO

import orjson

LOGGER_NAME = "mnist_backend.access"
FLUSH_INTERVAL_S = 0.2
MAX_PENDING_LINES = 256

_logger = logging.getLogger(LOGGER_NAME)


class AccessLog:
    def __init__(
        self,
        log_format: str,
        stream: TextIO | None = None,
        interval_s: float = FLUSH_INTERVAL_S,
        max_lines: int = MAX_PENDING_LINES,
    ) -> None:
        self._json = log_format == "json"
        self._stream = stream  # None: sys.stdout when written, where logging_setup writes
        self.interval_s, self.max_lines = interval_s, max_lines
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._second_text = ""

    def enabled(self) -> bool:
        return _logger.isEnabledFor(logging.INFO)

    def request(self, method: str, route: str, status: int, request_id: str, seconds: float) -> None:
        """Keep the line of one answered request (the route template, never the raw path)."""
        now = time.time()
        message = f"{method} {route} {status}"
        if self._json:
            line = orjson.dumps(
                {
                    "time": self._timestamp(now),
                    "level": "INFO",
                    "logger": LOGGER_NAME,
                    "message": message,
                    "event": "request",
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                }
            ).decode()
        else:  # logging_setup's text format: "%(asctime)s %(levelname)s %(name)s: %(message)s"
            local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            line = f"{local},{int(now % 1 * 1000):03d} INFO {LOGGER_NAME}: {message}"
        self._lines.append(line + "\n")
        if len(self._lines) >= self.max_lines:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.interval_s, self.flush)
            except RuntimeError:  # no event loop here: nothing would flush it later
                self.flush()

    def flush(self) -> None:
        """Write what is kept, now (the timer calls it; so does the service when it stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        stream = self._stream or sys.stdout
        stream.write("".join(lines))
        stream.flush()

    def _timestamp(self, now: float) -> str:
        """``2026-12-07T17:01:02.345+00:00``, as logging_setup's JSON lines write it; the part
        up to the second is made once a second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}+00:00"
