"""make bench's price list: the hub's server with ONE feature taken out, everything else as in production.

    python benchmarks/feature_off_server.py FEATURE      (settings from the environment, as python -m mnist_backend)

The service has no switch for any of these: in production every one stays on. The benchmark
takes the part out of the app it builds (``create_app``), so the server it measures is the real
one less exactly that part, served by the same uvicorn configuration (``mnist_backend.__main__.serve``):

- ``access_log``: the JSON line per request (``ACCESS_LOG=false``).
- ``api_key``: the key check (the client routes' dependency answers at once).
- ``request_context``: the request-id middleware (and the access log it writes).
- ``http_metrics``: the per-route request counter and latency histogram middleware.
- ``body_size_limit``: the middleware that refuses bodies over MAX_BODY_BYTES.
- ``prediction_metrics``: the inference histogram and the per-digit prediction counters.
- ``drift_statistics``: the input statistics every prediction feeds (ink share, box, centre).
- ``body_validation``: pydantic's validation of the JSON body (parsed with orjson instead; the
  pixel checks of the route stay).
- ``feedback_tokens``: the signed prediction id and token every answer carries when the service
  takes corrections (``FEEDBACK_DATABASE_URL`` unset).
- ``predict_fast_path``: not a feature but the layer that answers a float prediction without
  FastAPI's routing, dependencies and pydantic (``predict_fast_path.py``); taken out, the
  route answers it: its negative price is what the layer saves.
- ``body_validation`` therefore only prices requests the fast path hands to the route (PNGs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI

from mnist_backend.__main__ import serve
from mnist_backend.api.schemas import PredictRequest
from mnist_backend.config import Settings
from mnist_backend.logging_setup import configure_logging
from mnist_backend.main import create_app
from mnist_backend.metrics import HTTPMetricsMiddleware, ServiceMetrics
from mnist_backend.predict_fast_path import PredictFastPath
from mnist_backend.request_context import BodySizeLimitMiddleware, RequestContextMiddleware
from mnist_backend.security import require_api_key


def _without_middleware(cls: type) -> Callable[[FastAPI], None]:
    def take_out(app: FastAPI) -> None:
        before = len(app.user_middleware)
        app.user_middleware = [m for m in app.user_middleware if m.cls is not cls]
        assert len(app.user_middleware) == before - 1, f"{cls.__name__} is not in the app"

    return take_out


def _without_api_key(app: FastAPI) -> None:
    async def no_check() -> None:
        return None

    app.dependency_overrides[require_api_key] = no_check  # the routes
    app.state.access_control.authorize = lambda request, presented: None  # the predict fast path


def _metrics(app: FastAPI) -> ServiceMetrics:
    return app.state.metrics


def _without_prediction_metrics(app: FastAPI) -> None:
    metrics = _metrics(app)
    metrics.record_inference = lambda kind, seconds, images: None  # type: ignore[method-assign]
    metrics.record_predictions = lambda digits, confidences: None  # type: ignore[method-assign]


def _without_drift_statistics(app: FastAPI) -> None:
    _metrics(app).inputs.record = lambda pixels: None  # type: ignore[method-assign]


def _without_body_validation(app: FastAPI) -> None:
    def parse(data: bytes | str) -> Any:
        return PredictRequest.model_construct(**orjson.loads(data))

    PredictRequest.model_validate_json = parse  # type: ignore[method-assign,assignment]


FEATURES: dict[str, Callable[[FastAPI], None]] = {
    "access_log": lambda app: None,  # a setting: see settings_for
    "api_key": _without_api_key,
    "request_context": _without_middleware(RequestContextMiddleware),
    "http_metrics": _without_middleware(HTTPMetricsMiddleware),
    "body_size_limit": _without_middleware(BodySizeLimitMiddleware),
    "prediction_metrics": _without_prediction_metrics,
    "drift_statistics": _without_drift_statistics,
    "body_validation": _without_body_validation,
    "feedback_tokens": lambda app: None,  # a setting: see settings_for
    # Not a feature but the float prediction's way past FastAPI: its "price" is what it saves.
    "predict_fast_path": _without_middleware(PredictFastPath),
}


def settings_for(feature: str) -> Settings:
    if feature == "access_log":
        return Settings(access_log=False)
    if feature == "feedback_tokens":
        return Settings(feedback_database_url=None)
    return Settings()


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in FEATURES:
        sys.exit(f"usage: feature_off_server.py {{{','.join(FEATURES)}}}")
    feature = argv[0]
    settings = settings_for(feature)
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    FEATURES[feature](app)
    serve(app, settings)


if __name__ == "__main__":
    main(sys.argv[1:])
