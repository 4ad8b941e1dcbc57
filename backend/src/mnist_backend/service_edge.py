"""The service's outermost layer: what every request gets, in one pure-ASGI pass.

- an id: the caller's ``X-Request-ID`` when it is short and plain (so logs cannot be forged or
  flooded), otherwise 32 random hex digits; echoed in the reply and written in the access log;
- ``413`` for a body over ``MAX_BODY_BYTES``, declared (Content-Length) or streamed (chunked);
- the HTTP metrics: requests by route template, method and status, latency, requests in flight;
- the access log line (method, route template, status, duration, id; never the body).

One layer, not a middleware for each: every layer is one more call and one more wrapper of
``send`` on every request, which ``make bench`` measured at tens of µs a prediction. It wraps
Starlette's error middleware, so a request that fails with a 500 is counted and logged with its
id like any other. Inside it, the predict fast path (``predict_fast_path.py``) answers the
well-formed float or canvas prediction; everything else goes on to FastAPI.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_backend.access_log import AccessLog
from mnist_backend.asgi import header_value, send_json_error
from mnist_backend.metrics import ServiceMetrics, route_and_method

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLargeError(Exception):
    """A streamed body went over ``MAX_BODY_BYTES``: answered 413 (by the edge, or by the
    app's handler when a route was reading it)."""

    def __init__(self, received: int, limit: int) -> None:
        super().__init__(f"request body of {received} bytes is larger than the limit of {limit} bytes (MAX_BODY_BYTES)")


@dataclass
class EdgeParts:
    """What the edge does. ``create_app`` sets every part; ``make bench``'s price list takes one
    out before the app first serves (the edge is built then)."""

    request_ids: bool
    access_log: AccessLog | None
    metrics: ServiceMetrics | None
    max_body_bytes: int | None
    predict_fast_path: bool


class ServiceEdge:
    def __init__(self, app: ASGIApp, parts: EdgeParts) -> None:
        self.app = app
        self.parts = parts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts = self.parts
        started = time.perf_counter()
        request_id = None
        if parts.request_ids:
            incoming = header_value(scope, REQUEST_ID_HEADER)
            request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else os.urandom(16).hex().encode()
        status = 500  # what the client sees if the app fails before answering
        responded = False

        async def edge_send(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                if request_id is not None:
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        metrics = parts.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            limit = parts.max_body_bytes
            if limit is None:
                await self.app(scope, receive, edge_send)
                return
            declared = header_value(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await send_json_error(edge_send, 413, str(BodyTooLargeError(int(declared), limit)))
                return
            # A declared length is all the server hands over; only a chunked body is counted.
            try:
                await self.app(scope, receive if declared is not None else _counted(receive, limit), edge_send)
            except BodyTooLargeError as error:
                if not responded:
                    await send_json_error(edge_send, 413, str(error))
        except Exception:
            # The fast path's failures, which Starlette's error middleware does not see: the
            # same 500 it sends, and the error goes on to uvicorn, which logs it.
            if not responded:
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, edge_send)
            raise
        finally:
            if metrics is not None or parts.access_log is not None:
                seconds = time.perf_counter() - started
                route, method = route_and_method(scope)
                if metrics is not None:
                    metrics.in_flight.dec()
                    metrics.record_request(route, method, status, seconds)
                if parts.access_log is not None and parts.access_log.enabled():
                    parts.access_log.request(method, route, status, (request_id or b"-").decode(), seconds)


def _counted(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError(received, limit)
        return message

    return counting_receive
