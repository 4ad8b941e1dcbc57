"""``GET /metrics`` in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mnist_backend.api.dependencies import metrics_of

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    payload, content_type = metrics_of(request).exposition()
    return Response(payload, media_type=content_type)
