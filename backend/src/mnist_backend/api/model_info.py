"""``GET /api/v1/model/info`` and the admin reload call."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from mnist_backend.api.dependencies import holder_of, metrics_of, served_model
from mnist_backend.api.errors import APIError, json_response
from mnist_backend.api.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["model"])


@router.get("/model/info", responses=ERROR_RESPONSES, summary="The served model's metadata.json")
async def model_info(request: Request) -> Response:
    return json_response(served_model(request).metadata)


@router.post(
    "/admin/reload",
    responses={**ERROR_RESPONSES, 409: {"description": "the reload failed; the previous model keeps serving"}},
    summary="Reload the model named by MODEL_VERSION or models/CURRENT (same as SIGHUP)",
)
async def reload_model(request: Request) -> Response:
    holder = holder_of(request)
    previous = holder.model.version if holder.model else None
    model = await run_in_threadpool(reload_and_record, request)
    if model is None:
        still = f"still serving {previous}" if previous else "no model is served"
        raise APIError(409, f"reload failed ({still}): {holder.last_error}")
    return json_response({"model_version": model.version, "previous_version": previous})


def reload_and_record(request: Request) -> object:
    """Reload through the holder and keep the metrics in step with what is served."""
    holder, metrics = holder_of(request), metrics_of(request)
    model = holder.load()
    metrics.model_reloads.labels(result="success" if model else "failure").inc()
    current = holder.model
    metrics.set_model(current.version if current else None, current.test_accuracy if current else None)
    return model
