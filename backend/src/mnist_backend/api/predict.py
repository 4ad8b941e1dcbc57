"""``POST /api/v1/predict`` and ``POST /api/v1/predict/batch``."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from fastapi import APIRouter, Request, Response

from mnist_backend.api.dependencies import (
    decode_pool_of,
    disconnect_flag,
    metrics_of,
    parse_json_body,
    served_model,
    settings_of,
)
from mnist_backend.api.errors import APIError, json_response
from mnist_backend.api.schemas import (
    ERROR_RESPONSES,
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
    request_body_schema,
)
from mnist_backend.client_input import pixels_from_array
from mnist_backend.feedback.service import FeedbackService
from mnist_backend.inference import BatchResult, ImageLimits, batch_to_pixels, image_to_pixels, run_model
from mnist_backend.metrics import ServiceMetrics
from mnist_backend.model import LoadedModel
from mnist_contract.canvas import MNIST_SIDE

router = APIRouter(prefix="/api/v1", tags=["predict"])
# The most JSON values one image may carry: 784 pixels (28 rows of 28 add 28 separators).
IMAGE_VALUES = MNIST_SIDE * MNIST_SIDE + MNIST_SIDE


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body_schema(PredictRequest),
    summary="Predict the digit in one image",
)
async def predict(request: Request) -> Response:
    settings = settings_of(request)
    body = await parse_json_body(request, PredictRequest, settings.max_predict_body_bytes, IMAGE_VALUES + 8)
    model = served_model(request)
    if body.image is not None:
        # On the event loop: 784 floats and one small ONNX call cost less than a thread hop.
        pixels = pixels_from_array(body.image, "image")
    else:  # PredictRequest's validator guarantees exactly one of image / image_base64
        payload = cast(str, body.image_base64)
        pool = decode_pool_of(request)
        pixels = await image_to_pixels(payload, settings.max_image_pixels, settings.decode_inline_pixels, pool)
    return json_response(
        single_answer(model, pixels, metrics_of(request), request.app.state.feedback, body.return_input)
    )


def single_answer(
    model: LoadedModel,
    pixels: np.ndarray,
    metrics: ServiceMetrics,
    feedback: FeedbackService | None,
    return_input: bool,
) -> dict[str, Any]:
    """The answer to one image (this route's, and predict_fast_path.py's): the model's call,
    recorded in the metrics, and the feedback token when the service takes corrections."""
    result = run_model(model, pixels[np.newaxis], metrics, "single")
    (prediction,) = result.as_dicts(return_input)
    answer = {**prediction, "model_version": model.version, "inference_ms": round(result.inference_ms, 4)}
    if feedback is not None:  # signing only: the store is never called on this path
        answer |= feedback.issue(model.version, pixels, prediction["digit"], prediction["confidence"])
    return answer


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body_schema(BatchRequest),
    summary="Predict the digits in up to MAX_BATCH images with one model call",
)
async def predict_batch(request: Request) -> Response:
    # Admitted before the body is read: a batch holds its body and parsed values until it is done.
    with request.app.state.batch_admission.enter():
        return await _predict_batch(request)


async def _predict_batch(request: Request) -> Response:
    settings = settings_of(request)
    # Room for twice MAX_BATCH images of floats, so an oversized batch hears how many images it sent.
    max_values = 2 * (IMAGE_VALUES + 1) * settings.max_batch + 8
    body = await parse_json_body(request, BatchRequest, settings.max_body_bytes, max_values)
    if len(body.images) > settings.max_batch:
        raise APIError(413, f"too many images in one batch: {len(body.images)} (MAX_BATCH is {settings.max_batch})")
    model = served_model(request)
    limits = ImageLimits(settings.max_image_pixels, settings.max_batch_pixels)
    metrics = metrics_of(request)
    async with disconnect_flag(request) as abandoned:

        def work() -> BatchResult:  # on a decode thread: up to MAX_BATCH images and one large ONNX call
            return run_model(model, batch_to_pixels(body.images, limits, abandoned), metrics, "batch")

        result = await decode_pool_of(request).run(work)
    return json_response(
        {
            "predictions": result.as_dicts(body.return_input),
            "model_version": model.version,
            "inference_ms": round(result.inference_ms, 4),
        }
    )
