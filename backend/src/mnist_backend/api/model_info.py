"""``GET /api/v1/model/info``: the served model's metadata."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mnist_backend.api.dependencies import served_model
from mnist_backend.api.errors import json_response
from mnist_backend.api.schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["model"])


@router.get("/model/info", responses=error_responses(401, 429, 503), summary="The served model's metadata.json")
async def model_info(request: Request) -> Response:
    return json_response(served_model(request).metadata)
