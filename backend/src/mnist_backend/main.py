"""The app factory: builds the FastAPI app from ``Settings`` (tests pass their own)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from mnist_backend import __version__
from mnist_backend.access_log import AccessLog
from mnist_backend.api import admin, bench, feedback, health, metrics_route, model_info, open_inference, predict
from mnist_backend.api.errors import install_error_handlers
from mnist_backend.client_input import limit_pillow_decoding
from mnist_backend.config import Settings
from mnist_backend.decode_pool import Admission, DecodePool
from mnist_backend.feedback.service import FeedbackService
from mnist_backend.metrics import ServiceMetrics
from mnist_backend.model import LoadedModel, ModelHolder
from mnist_backend.model_watch import follow_current
from mnist_backend.openapi_contract import state_settings_in_openapi
from mnist_backend.predict_fast_path import PredictFastPath
from mnist_backend.resource_limits import cpu_limit_cores, memory_limit_bytes
from mnist_backend.security import AccessControl, client_dependencies
from mnist_backend.service_edge import EdgeParts, ServiceEdge

logger = logging.getLogger(__name__)

API_DESCRIPTION = """Reads handwritten digits. Send 784 MNIST-style floats or any PNG/JPEG
drawing; get the digit, its confidence and all ten probabilities. Send `X-API-Key` when the
service has keys configured (staging and production always do)."""


class HubAPI(FastAPI):
    """FastAPI with the service's edge and the predict fast path around its whole stack
    (Starlette's error middleware included), built when the app first serves."""

    edge: EdgeParts

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.edge.predict_fast_path:
            stack = PredictFastPath(stack, self)
        return ServiceEdge(stack, self.edge)


def create_app(settings: Settings | None = None) -> HubAPI:
    settings = settings or Settings()
    # Pillow's own decompression-bomb check: no single image may be larger than a whole request's budget.
    limit_pillow_decoding(settings.max_batch_pixels)
    metrics = ServiceMetrics()
    metrics.set_resource_limits(memory_limit_bytes(), cpu_limit_cores())
    holder = ModelHolder(
        settings.model_dir,
        settings.model_version,
        settings.ort_intra_op_threads,
        settings.ort_inter_op_threads,
        settings.max_inference_ms,
    )

    def load_model() -> LoadedModel | None:
        """(Re)load through the holder and keep the metrics in step with what is served."""
        model = holder.load()
        metrics.model_reloads.labels(result="success" if model else "failure").inc()
        current = holder.model
        metrics.set_model(current.version if current else None, current.test_accuracy if current else None)
        metrics.inputs.set_reference(current.contract.input_statistics if current else None)
        return model

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A missing or broken model does not stop the service: /ready reports why (503).
        await run_in_threadpool(load_model)
        app.state.decode_pool = decode_pool = DecodePool(settings.decode_workers, settings.decode_queue)
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, load_model))
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), or no SIGHUP
            logger.debug("SIGHUP reload not available in this process")
        # The store is not touched here: a database that is away must not delay serving.
        retention = asyncio.create_task(feedback_service.keep_retention()) if feedback_service else None
        watch = None
        if settings.model_reload_interval_s > 0 and not settings.model_version:
            watch = asyncio.create_task(follow_current(holder, load_model, settings.model_reload_interval_s))
        # Everything built so far (modules, the app, schemas, the model) lives as long as the
        # process. Frozen, the cyclic collector no longer walks it: its full collections, which
        # stalled every request in flight for ~40 ms every few seconds under load, take ~1 ms.
        gc.collect()
        gc.freeze()
        yield
        for task in (watch, retention):
            if task:
                task.cancel()
        if feedback_service:
            feedback_service.close()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        decode_pool.shutdown()
        if access_log is not None:
            access_log.flush()

    app = HubAPI(
        title="MNIST hub inference API",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # No route ends in "/": a redirect to the slash-less path would build its Location from
        # the client's Host header, a redirect to wherever the client names (404 instead).
        redirect_slashes=False,
        # The hub's observability is its Prometheus metrics and access log. FastAPI's own
        # OpenTelemetry layer otherwise asks the OpenTelemetry providers on every request
        # whether one is configured (~10 µs a request with none).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    access_log = AccessLog(settings.log_format) if settings.access_log else None
    app.state.metrics = metrics
    app.state.model_holder = holder
    app.state.load_model = load_model
    app.state.batch_admission = Admission(settings.max_concurrent_batches, "batch", "batch places")
    app.state.access_control = AccessControl(settings)  # refuses a malformed RATE_LIMIT now, not per request
    feedback_service = FeedbackService(settings, metrics) if settings.feedback_database_url else None
    app.state.feedback = feedback_service

    for router in (health.router, metrics_route.router, admin.router, feedback.admin_router, open_inference.probes):
        app.include_router(router)
    # Keys and rate limits: dependencies of the client routes, so they run after routing.
    client_routers = [predict.router, feedback.router, model_info.router, open_inference.router]
    for router in (*client_routers, *((bench.router,) if settings.enable_bench_endpoint else ())):
        app.include_router(router, dependencies=client_dependencies(settings))
    install_error_handlers(app)
    state_settings_in_openapi(app, settings)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "X-Request-ID"],
        )
    # Request ids, the body limit, HTTP metrics and the access log: one layer around everything
    # (service_edge.py). Keys and rate limits are route dependencies (security.py).
    app.edge = EdgeParts(
        request_ids=True,
        access_log=access_log,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        predict_fast_path=True,
    )
    return app
