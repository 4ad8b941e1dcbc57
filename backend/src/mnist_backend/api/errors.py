"""Errors that routes raise, and the handlers that turn each into a clear 4xx/503 reply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from mnist_backend.decode_pool import ServiceBusyError
from mnist_backend.feedback.store import StoreUnavailableError
from mnist_backend.inference import PixelBudgetExceededError, RequestAbandonedError
from mnist_backend.open_inference import ProtocolError
from mnist_backend.service_edge import BodyTooLargeError
from mnist_contract.canvas import InvalidImageError

# nginx's code for "the client closed the connection first"; nobody reads it, logs and metrics do.
CLIENT_CLOSED_REQUEST = 499


class APIError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson-encoded JSON (numpy arrays and floats included), without a second validation pass."""
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_body(request: Request, detail: str) -> dict[str, str]:
    """``{"detail": ...}`` on this service's own API; the Open Inference Protocol's
    ``{"error": ...}`` under ``/v2``, which its clients read."""
    return {"error": detail} if request.url.path.startswith("/v2") else {"detail": detail}


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic's error list as one sentence a person can act on."""
    parts = []
    for error in errors[:3]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    more = f" (and {len(errors) - 3} more problems)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError) -> Response:
        return json_response(error_body(request, error.detail), error.status, error.headers)

    @app.exception_handler(InvalidImageError)
    async def _invalid_image(_: Request, error: InvalidImageError) -> Response:
        return json_response({"detail": str(error)}, 422)

    @app.exception_handler(PixelBudgetExceededError)
    async def _over_pixel_budget(_: Request, error: PixelBudgetExceededError) -> Response:
        return json_response({"detail": str(error)}, 413)

    @app.exception_handler(BodyTooLargeError)  # a route was reading a streamed body
    async def _body_too_large(_: Request, error: BodyTooLargeError) -> Response:
        return json_response({"detail": str(error)}, 413)

    @app.exception_handler(ServiceBusyError)
    async def _busy(request: Request, error: ServiceBusyError) -> Response:
        request.app.state.metrics.busy_rejections.labels(kind=error.kind).inc()
        detail = f"the service is busy ({error}); retry shortly"
        return json_response(error_body(request, detail), 503, {"Retry-After": "1"})

    @app.exception_handler(StoreUnavailableError)
    async def _store_unavailable(_: Request, error: StoreUnavailableError) -> Response:
        detail = f"{error}; the correction was not kept, try again later (predictions are unaffected)"
        return json_response({"detail": detail}, 503, {"Retry-After": "30"})

    @app.exception_handler(RequestAbandonedError)
    async def _abandoned(request: Request, error: RequestAbandonedError) -> Response:
        return json_response(error_body(request, str(error)), CLIENT_CLOSED_REQUEST)

    @app.exception_handler(ProtocolError)
    async def _protocol_error(_: Request, error: ProtocolError) -> Response:
        return json_response({"error": str(error)}, error.status)

    @app.exception_handler(ValidationError)
    async def _invalid_body(_: Request, error: ValidationError) -> Response:
        errors = error.errors(include_url=False, include_context=False, include_input=False)
        return json_response({"detail": describe_validation_errors(errors), "errors": errors}, 422)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> Response:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in error.errors()]
        return json_response({"detail": describe_validation_errors(errors), "errors": errors}, 422)
