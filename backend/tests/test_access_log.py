"""The access log (``access_log.py``): the lines ``logging`` would write, handed over in batches."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

from fastapi.testclient import TestClient

from mnist_backend.access_log import LOGGER_NAME, AccessLog
from mnist_backend.logging_setup import EscapingTextFormatter, JsonLineFormatter
from mnist_backend.main import create_app
from tests.conftest import make_settings

FIELDS = {"method": "POST", "route": "/api/v1/predict", "status": 200, "request_id": "abc", "seconds": 0.0123456}


def logged_by_logging(formatter: logging.Formatter) -> str:
    """The line the service's logging configuration writes for the same request."""
    extra = {"event": "request", "request_id": "abc", "method": "POST", "route": "/api/v1/predict", "status": 200}
    record = logging.getLogger(LOGGER_NAME).makeRecord(
        LOGGER_NAME,
        logging.INFO,
        __file__,
        0,
        "%s %s %d",
        ("POST", "/api/v1/predict", 200),
        None,
        extra={**extra, "duration_ms": 12.346},
    )
    return formatter.format(record)


def test_a_json_line_has_the_fields_and_order_of_the_services_other_json_lines():
    stream = io.StringIO()
    AccessLog("json", stream).request(**FIELDS)  # no event loop: written at once
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    ours, theirs = json.loads(line), json.loads(logged_by_logging(JsonLineFormatter()))
    assert list(ours) == list(theirs)
    assert {k: v for k, v in ours.items() if k != "time"} == {k: v for k, v in theirs.items() if k != "time"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", ours["time"])


def test_a_text_line_reads_as_the_services_text_lines():
    stream = io.StringIO()
    AccessLog("text", stream).request(**FIELDS)
    theirs = logged_by_logging(EscapingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    assert re.fullmatch(pattern + re.escape(theirs[24:]) + "\n", stream.getvalue())


def test_lines_are_kept_until_the_interval_has_passed_then_written_in_one_write():
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    async def serve() -> None:
        log = AccessLog("json", Stream(), interval_s=0.05)
        for _ in range(3):
            log.request(**FIELDS)
        assert writes == []  # nothing yet: the three lines wait for the timer
        await asyncio.sleep(0.2)
        assert len(writes) == 1 and writes[0].count("\n") == 3
        log.request(**FIELDS)
        await asyncio.sleep(0.2)
        assert len(writes) == 2  # the timer is set again by the next line

    asyncio.run(serve())


def test_a_full_batch_is_written_without_waiting():
    stream = io.StringIO()

    async def serve() -> None:
        log = AccessLog("json", stream, interval_s=60, max_lines=4)
        for _ in range(9):
            log.request(**FIELDS)
        assert stream.getvalue().count("\n") == 8  # two full batches; the ninth waits
        log.flush()
        assert stream.getvalue().count("\n") == 9

    asyncio.run(serve())


def test_the_service_writes_what_it_kept_when_it_stops(model_dir, capsys, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)  # as configure_logging's LOG_LEVEL=info
    app = create_app(make_settings(model_dir, log_format="json"))
    with TestClient(app) as client:
        client.get("/health", headers={"X-Request-ID": "last-words"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "last-words" and line["route"] == "/health" for line in lines)


def test_log_level_warning_silences_it():
    logger = logging.getLogger(LOGGER_NAME)
    before = logger.level
    logger.setLevel(logging.WARNING)
    try:
        assert AccessLog("json").enabled() is False
    finally:
        logger.setLevel(before)
    assert AccessLog("json").enabled() is logger.isEnabledFor(logging.INFO)
