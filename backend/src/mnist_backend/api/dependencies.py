"""What routes need from the app: settings, the served model, metrics — and the JSON body."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel

from mnist_backend.api.errors import APIError
from mnist_backend.config import Settings
from mnist_backend.decode_pool import DecodePool
from mnist_backend.metrics import ServiceMetrics
from mnist_backend.model import LoadedModel, ModelHolder

Body = TypeVar("Body", bound=BaseModel)


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def metrics_of(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


def holder_of(request: Request) -> ModelHolder:
    return request.app.state.model_holder


def decode_pool_of(request: Request) -> DecodePool:
    return request.app.state.decode_pool


def served_model(request: Request) -> LoadedModel:
    """The model to use for this whole request, or 503 with the reason there is none."""
    holder = holder_of(request)
    model = holder.model
    if model is None:
        raise APIError(503, f"model not ready: {holder.not_ready_reason}", {"Retry-After": "5"})
    return model


async def parse_json_body(request: Request, model: type[Body], max_bytes: int, max_values: int) -> Body:
    """Validate the raw body with pydantic's JSON parser (one pass, no intermediate dicts).

    415 unless the body is declared as JSON; 413 past this route's ``max_bytes`` (declared or
    streamed), before the rest is read, or when it holds more than ``max_values`` JSON values;
    pydantic errors become a 422 naming the field.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise APIError(415, f"send the body as application/json (got {content_type or 'no content type'!r})")
    body = await read_body(request, max_bytes)
    # The parser materializes every value before validation can refuse one (4 MiB of "0," is
    # 2 million numbers, ~200 MB of RSS). JSON separates values with commas and base64 has
    # none, so counting them (a C loop over the bytes) bounds that cost first.
    values = body.count(b",") + 1
    if values > max_values:
        raise APIError(413, f"request body holds about {values} values; this route accepts at most {max_values}")
    return model.model_validate_json(body)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or 413 past ``max_bytes`` (declared or streamed) before the rest is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise APIError(413, _too_large(int(declared), max_bytes))
    chunks, received = [], 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise APIError(413, _too_large(received, max_bytes))
        chunks.append(chunk)
    return b"".join(chunks)


@contextlib.asynccontextmanager
async def disconnect_flag(request: Request) -> AsyncIterator[threading.Event]:
    """An event set when the client closes the connection, for work that can stop early.

    Only after the body was read: the next message the server has for this request is then
    ``http.disconnect``.
    """
    flag = threading.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        flag.set()

    watcher = asyncio.create_task(watch())
    try:
        yield flag
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def _too_large(size: int, max_bytes: int) -> str:
    return f"request body of {size} bytes is larger than this route's limit of {max_bytes} bytes"
