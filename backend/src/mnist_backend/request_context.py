"""Per-request plumbing: request ids, access logs, and the body size limit."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_backend.asgi import header_value, send_json_error
from mnist_backend.metrics import route_and_method

access_logger = logging.getLogger("mnist_backend.access")

REQUEST_ID_HEADER = b"x-request-id"
# Honour a caller's id only when it is short and plain, so logs cannot be forged or flooded.
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Gives each request an id (honouring ``X-Request-ID``), echoes it, and logs one line.

    The access log carries method, route template, status, duration and the id — never
    the body, so no image data reaches the logs.
    """

    def __init__(self, app: ASGIApp, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header_value(scope, REQUEST_ID_HEADER)
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log and access_logger.isEnabledFor(logging.INFO):
                self._log(scope, status, request_id.decode(), time.perf_counter() - started)

    @staticmethod
    def _log(scope: Scope, status: int, request_id: str, seconds: float) -> None:
        # The route template, never the raw path: clients choose paths, not log lines.
        route, method = route_and_method(scope)
        fields = {
            "event": "request",
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        # makeRecord + handle: the same handlers and formats as logger.info, without the
        # caller lookup (a stack walk) that an access log line does not need.
        record = access_logger.makeRecord(
            access_logger.name, logging.INFO, __file__, 0, "%s %s %d", (method, route, status), None, extra=fields
        )
        access_logger.handle(record)


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 for bodies over ``MAX_BODY_BYTES``, declared (Content-Length) or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header_value(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json_error(send, 413, self._detail(int(declared)))
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if not response_started:
                await send_json_error(send, 413, self._detail(received))

    def _detail(self, size: int) -> str:
        return f"request body of {size} bytes is larger than the limit of {self.max_bytes} bytes (MAX_BODY_BYTES)"
