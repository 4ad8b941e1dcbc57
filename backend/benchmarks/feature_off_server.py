"""make bench's price list: the hub's server with ONE feature taken out, everything else as in production.

    python benchmarks/feature_off_server.py FEATURE      (settings from the environment, as python -m mnist_backend)

The service has no switch for any of these: in production every one stays on. The benchmark
takes the part out of the app it builds (``create_app``; the first three are parts of the one
edge layer, ``service_edge.py``), so the server it measures is the real
one less exactly that part, served by the same uvicorn configuration (``mnist_backend.__main__.serve``):

- ``access_log``: the JSON line per request (``ACCESS_LOG=false``).
- ``api_key``: the key check (the client routes' dependency answers at once).
- ``request_context``: the request ids (and the access log, whose lines carry them).
- ``http_metrics``: the per-route request counter, latency histogram and in-flight gauge.
- ``body_size_limit``: the check that refuses bodies over MAX_BODY_BYTES.
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
- ``every_feature``: all of the features above at once (the fast path stays): the server's cost
  with nothing of the hub's around the model, the floor for what any cheapening can reach.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import orjson

from mnist_backend.__main__ import serve
from mnist_backend.api.schemas import PredictRequest
from mnist_backend.config import Settings
from mnist_backend.logging_setup import configure_logging
from mnist_backend.main import HubAPI, create_app
from mnist_backend.metrics import ServiceMetrics
from mnist_backend.security import require_api_key


def _without_edge_part(part: str) -> Callable[[HubAPI], None]:
    """Takes one part out of the service's edge (service_edge.py), read when the app first serves."""

    def take_out(app: HubAPI) -> None:
        edge = app.edge
        if part == "request_ids":  # the access log names each line by its id: it goes with them
            edge.request_ids, edge.access_log = False, None
        elif part == "predict_fast_path":
            edge.predict_fast_path = False
        else:
            setattr(edge, part, None)

    return take_out


def _without_api_key(app: HubAPI) -> None:
    async def no_check() -> None:
        return None

    app.dependency_overrides[require_api_key] = no_check  # the routes
    app.state.access_control.authorize = lambda request, presented: None  # the predict fast path


def _metrics(app: HubAPI) -> ServiceMetrics:
    return app.state.metrics


def _without_prediction_metrics(app: HubAPI) -> None:
    metrics = _metrics(app)
    metrics.record_inference = lambda kind, seconds, images: None  # type: ignore[method-assign]
    metrics.record_predictions = lambda digits, confidences: None  # type: ignore[method-assign]


def _without_drift_statistics(app: HubAPI) -> None:
    _metrics(app).inputs.record = lambda pixels: None  # type: ignore[method-assign]


def _without_body_validation(app: HubAPI) -> None:
    def parse(data: bytes | str) -> Any:
        return PredictRequest.model_construct(**orjson.loads(data))

    PredictRequest.model_validate_json = parse  # type: ignore[method-assign,assignment]


FEATURES: dict[str, Callable[[HubAPI], None]] = {
    "access_log": lambda app: None,  # a setting: SETTINGS_FEATURES
    "api_key": _without_api_key,
    "request_context": _without_edge_part("request_ids"),
    "http_metrics": _without_edge_part("metrics"),
    "body_size_limit": _without_edge_part("max_body_bytes"),
    "prediction_metrics": _without_prediction_metrics,
    "drift_statistics": _without_drift_statistics,
    "body_validation": _without_body_validation,
    "feedback_tokens": lambda app: None,  # a setting: SETTINGS_FEATURES
    # Not a feature but the float prediction's way past FastAPI: its "price" is what it saves.
    "predict_fast_path": _without_edge_part("predict_fast_path"),
}
# Two features are settings; the rest are taken out of the app.
SETTINGS_FEATURES = {"access_log": {"access_log": False}, "feedback_tokens": {"feedback_database_url": None}}
# Every feature at once (the fast path stays): what the hub's structure costs by itself, the
# floor that no cheapening of the features can go below.
EVERY_FEATURE = "every_feature"
CHOICES = (*FEATURES, EVERY_FEATURE)


def taken_out(feature: str) -> list[str]:
    """The features ``feature`` names: itself, or for ``every_feature`` all but the fast path."""
    return [f for f in FEATURES if f != "predict_fast_path"] if feature == EVERY_FEATURE else [feature]


def settings_update(feature: str) -> dict[str, object]:
    return {key: value for f in taken_out(feature) for key, value in SETTINGS_FEATURES.get(f, {}).items()}


def settings_for(feature: str) -> Settings:
    return Settings(**settings_update(feature))  # type: ignore[arg-type]


def take_out(app: HubAPI, feature: str) -> None:
    for name in taken_out(feature):
        FEATURES[name](app)


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in CHOICES:
        sys.exit(f"usage: feature_off_server.py {{{','.join(CHOICES)}}}")
    feature = argv[0]
    settings = settings_for(feature)
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    take_out(app, feature)
    serve(app, settings)


if __name__ == "__main__":
    main(sys.argv[1:])
