"""``POST /api/v1/admin/reload``: switch the served version without a restart (admin key)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from mnist_backend.api.dependencies import holder_of
from mnist_backend.api.errors import APIError, json_response
from mnist_backend.api.schemas import ERROR_RESPONSES
from mnist_backend.security import AdminKeyRequired

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.post(
    "/admin/reload",
    dependencies=[AdminKeyRequired],
    responses={
        **ERROR_RESPONSES,
        403: {"description": "not an admin key (ADMIN_API_KEYS), or admin operations are disabled"},
        409: {"description": "the reload failed; the previous model keeps serving"},
    },
    summary="Reload the model named by MODEL_VERSION or models/CURRENT (same as SIGHUP)",
)
async def reload_model(request: Request) -> Response:
    holder = holder_of(request)
    previous = holder.model.version if holder.model else None
    model = await run_in_threadpool(request.app.state.load_model)  # the same path SIGHUP takes
    if model is None:
        still = f"still serving {previous}" if previous else "no model is served"
        raise APIError(409, f"reload failed ({still}): {holder.last_error}")
    return json_response({"model_version": model.version, "previous_version": previous})
