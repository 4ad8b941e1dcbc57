"""``POST /api/v1/predict`` and ``POST /api/v1/predict/batch``."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from mnist_backend.api.dependencies import metrics_of, parse_json_body, served_model, settings_of
from mnist_backend.api.errors import APIError, json_response
from mnist_backend.api.schemas import (
    ERROR_RESPONSES,
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
    request_body_schema,
)
from mnist_backend.inference import run_model, to_pixels

router = APIRouter(prefix="/api/v1", tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body_schema(PredictRequest),
    summary="Predict the digit in one image",
)
async def predict(request: Request) -> Response:
    # Runs on the event loop: one small ONNX call (~0.1 ms) costs less than a thread hop.
    body = await parse_json_body(request, PredictRequest)
    model = served_model(request)
    settings = settings_of(request)
    if body.image is not None:
        pixels = to_pixels(body.image, settings.max_image_pixels, "image")
    else:
        pixels = to_pixels(body.image_base64, settings.max_image_pixels, "image_base64")
    result = run_model(model, pixels[np.newaxis], metrics_of(request), "single")
    (prediction,) = result.as_dicts(body.return_input)
    return json_response({**prediction, "model_version": model.version, "inference_ms": round(result.inference_ms, 4)})


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body_schema(BatchRequest),
    summary="Predict the digits in up to MAX_BATCH images with one model call",
)
async def predict_batch(request: Request) -> Response:
    settings = settings_of(request)
    body = await parse_json_body(request, BatchRequest)
    if len(body.images) > settings.max_batch:
        raise APIError(413, f"too many images in one batch: {len(body.images)} (MAX_BATCH is {settings.max_batch})")
    model = served_model(request)

    def work() -> tuple:
        # Decoding up to MAX_BATCH images and a big ONNX call: keep the event loop free.
        pixels = np.stack(
            [to_pixels(item, settings.max_image_pixels, f"images[{i}]") for i, item in enumerate(body.images)]
        )
        return run_model(model, pixels, metrics_of(request), "batch")

    result = await run_in_threadpool(work)
    return json_response(
        {
            "predictions": result.as_dicts(body.return_input),
            "model_version": model.version,
            "inference_ms": round(result.inference_ms, 4),
        }
    )
