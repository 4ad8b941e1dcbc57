"""What routes need from the app: settings, the served model, metrics — and the JSON body."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel

from mnist_backend.api.errors import APIError
from mnist_backend.config import Settings
from mnist_backend.metrics import ServiceMetrics
from mnist_backend.model import LoadedModel, ModelHolder

Body = TypeVar("Body", bound=BaseModel)


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def metrics_of(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


def holder_of(request: Request) -> ModelHolder:
    return request.app.state.model_holder


def served_model(request: Request) -> LoadedModel:
    """The model to use for this whole request, or 503 with the reason there is none."""
    holder = holder_of(request)
    model = holder.model
    if model is None:
        raise APIError(503, f"model not ready: {holder.not_ready_reason}", {"Retry-After": "5"})
    return model


async def parse_json_body(request: Request, model: type[Body]) -> Body:
    """Validate the raw body with pydantic's JSON parser (one pass, no intermediate dicts).

    415 unless the body is declared as JSON; pydantic errors become a 422 naming the field.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise APIError(415, f"send the body as application/json (got {content_type or 'no content type'!r})")
    return model.model_validate_json(await request.body())
