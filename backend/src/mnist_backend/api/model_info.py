"""``GET /api/v1/model/info`` (the served model's metadata) and ``GET /api/v1/model/card`` (its
model card)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mnist_backend.api.dependencies import served_model
from mnist_backend.api.errors import APIError, json_response
from mnist_backend.api.schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["model"])
MARKDOWN = "text/markdown; charset=utf-8"


@router.get("/model/info", responses=error_responses(401, 429, 503), summary="The served model's metadata.json")
async def model_info(request: Request) -> Response:
    return json_response(served_model(request).metadata)


@router.get(
    "/model/card",
    response_class=Response,
    responses={
        200: {"content": {"text/markdown": {"schema": {"type": "string"}}}, "description": "the model card"},
        **error_responses(401, 404, 429, 503),
    },
    summary="The served model's card (MODEL_CARD.md): intended use, data, metrics, limits",
)
async def model_card(request: Request) -> Response:
    model = served_model(request)
    if model.model_card is None:
        raise APIError(404, f"model version {model.version} has no model card (MODEL_CARD.md)")
    return Response(model.model_card, media_type=MARKDOWN)
