"""Prometheus metrics (the service's edge, ``service_edge.py``, records the HTTP ones).

Routes are labelled by their template (``/api/v1/predict``), never by the raw path, so
label values stay bounded whatever clients send. With several worker processes in one
container, set ``PROMETHEUS_MULTIPROC_DIR`` (see the backend README); the hub itself runs
one worker per container and scales by replicas, each scraped on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from starlette.types import Scope

from mnist_backend.input_drift import InputStatistics

# The *_created series double the exposition size and no dashboard uses them.
disable_created_metrics()

# 0.2: the latency SLO counts requests answered within 200 ms (monitoring/prometheus/rules/slo.yml).
# 0.015 and 0.02: a canary analysis compares p99s 15 ms apart (monitoring/canary-analysis.toml);
# without them one slow request in a hundred interpolates anywhere between 10 and 25 ms.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.025,
    0.05,
    0.1,
    0.2,
    0.25,
    0.5,
    1.0,
    2.5,
)
INFERENCE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_and_method(scope: Scope) -> tuple[str, str]:
    """The route template (or ``<unmatched>``) and the method (or ``OTHER``): bounded values
    that metrics and logs can carry, whatever path or method a client sends."""
    route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
    method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
    return route, method


class ServiceMetrics:
    """Every metric the service exports, on its own registry (tests build several apps)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ... per replica.
        ProcessCollector(registry=r)
        self.memory_limit = Gauge(
            "mnist_container_memory_limit_bytes", "The container's memory limit (absent without one)", registry=r
        )
        self.cpu_limit = Gauge(
            "mnist_container_cpu_limit_cores", "The container's CPU limit in cores (absent without one)", registry=r
        )
        self.requests = Counter(
            "mnist_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "mnist_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "mnist_http_requests_in_flight", "Requests being handled now", registry=r, multiprocess_mode="livesum"
        )
        self.inference_latency = Histogram(
            "mnist_inference_duration_seconds",
            "ONNX Runtime time per call",
            ["kind"],
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.inference_images = Counter("mnist_inference_images", "Images passed through the model", registry=r)
        self.predictions = Counter("mnist_predictions", "Predicted digits", ["digit"], registry=r)
        self.confidence = Histogram(
            "mnist_prediction_confidence", "Probability of the predicted digit", buckets=CONFIDENCE_BUCKETS, registry=r
        )
        self.model_info = Gauge(
            "mnist_model_info",
            "The served model (value 1)",
            ["version", "test_accuracy"],
            registry=r,
            multiprocess_mode="max",
        )
        self.model_ready = Gauge(
            "mnist_model_ready", "1 when a model is loaded and serving", registry=r, multiprocess_mode="max"
        )
        self.model_reloads = Counter("mnist_model_reloads", "Model (re)load attempts by result", ["result"], registry=r)
        # Drift: statistics of every model input against the served version's training split.
        # Single-process registries only: in multiprocess mode each worker would export its own.
        self.inputs = InputStatistics(r)
        self.busy_rejections = Counter(
            "mnist_busy_rejections",
            "Requests refused (503) because every place of a kind was taken",
            ["kind"],
            registry=r,
        )
        # People's corrections: live accuracy per served version (monitoring/prometheus/rules).
        self.feedback = Counter(
            "mnist_feedback",
            "Corrections from people, by the version that answered and whether its answer was right",
            ["model_version", "verdict"],
            registry=r,
        )
        self.feedback_refused = Counter(
            "mnist_feedback_refused",
            "Corrections not stored: forged, expired or misplaced tokens, or the store unavailable",
            ["reason"],
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # Pre-create children so every series exists from the first scrape (rate() needs a baseline).
        self._digit_counters = [self.predictions.labels(digit=str(d)) for d in range(10)]
        self._inference = {kind: self.inference_latency.labels(kind=kind) for kind in ("single", "batch")}
        for result in ("success", "failure"):
            self.model_reloads.labels(result=result)
        for kind in ("image_decoding", "batch", "feedback_store"):
            self.busy_rejections.labels(kind=kind)
        for reason in ("forged", "expired", "other_prediction", "store_unavailable"):
            self.feedback_refused.labels(reason=reason)

    def set_resource_limits(self, memory_bytes: int | None, cpu_cores: float | None) -> None:
        """Export the container's limits; a missing limit leaves its gauge without a sample."""
        for gauge, value in ((self.memory_limit, memory_bytes), (self.cpu_limit, cpu_cores)):
            if value is None:
                self.registry.unregister(gauge)
            else:
                gauge.set(value)

    def record_predictions(self, digits: Iterable[int], confidences: Iterable[float]) -> None:
        for digit, confidence in zip(digits, confidences, strict=True):
            self._digit_counters[digit].inc()
            self.confidence.observe(confidence)

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered HTTP request, by route template, method and status."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:  # labels() costs more than the increment: once per kind of request
            children = self._request_children[key] = (
                self.requests.labels(route=route, method=method, status=str(status)),
                self.request_latency.labels(route=route, method=method),
            )
        children[0].inc()
        children[1].observe(seconds)

    def record_inference(self, kind: str, seconds: float, images: int) -> None:
        self._inference[kind].observe(seconds)
        self.inference_images.inc(images)

    def set_model(self, version: str | None, test_accuracy: float | None) -> None:
        self.model_info.clear()
        if version is not None:
            self.model_info.labels(version=version, test_accuracy=f"{test_accuracy:.4f}").set(1)
            for verdict in ("right", "wrong"):  # from 0, so the first correction shows in increase()
                self.feedback.labels(model_version=version, verdict=verdict)
        self.model_ready.set(1 if version is not None else 0)

    def exposition(self) -> tuple[bytes, str]:
        """The text format for ``/metrics``; aggregates all workers in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
