"""The no-op baseline for ``make bench``: same middleware, key check and body parser, no model.

Mounted only with ``ENABLE_BENCH_ENDPOINT=true``. Its throughput is the HTTP stack's own
ceiling, so the predict route's numbers can be read as a fraction of it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mnist_backend.api.dependencies import parse_json_body, settings_of
from mnist_backend.api.predict import IMAGE_VALUES
from mnist_backend.api.schemas import PredictRequest

router = APIRouter(prefix="/api/v1", include_in_schema=False)

_CONSTANT_REPLY = b'{"digit":0,"confidence":1.0}'


@router.post("/bench/noop")
async def noop(request: Request) -> Response:
    await parse_json_body(request, PredictRequest, settings_of(request).max_predict_body_bytes, IMAGE_VALUES + 8)
    return Response(_CONSTANT_REPLY, media_type="application/json")
