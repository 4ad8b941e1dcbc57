"""Liveness and readiness probes (no API key: orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mnist_backend.api.dependencies import holder_of
from mnist_backend.api.errors import json_response

router = APIRouter(tags=["health"])


@router.get("/health", summary="Alive: the process answers HTTP")
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get("/ready", summary="Ready: a model is loaded (503 with the reason otherwise)")
async def ready(request: Request) -> Response:
    holder = holder_of(request)
    model = holder.model
    if model is None:
        return json_response({"status": "not ready", "reason": holder.not_ready_reason}, 503)
    return json_response({"status": "ready", "model_version": model.version})
