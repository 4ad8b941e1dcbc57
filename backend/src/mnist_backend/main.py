"""The app factory: builds the FastAPI app from ``Settings`` (tests pass their own)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from mnist_backend import __version__
from mnist_backend.api import bench, health, metrics_route, model_info, predict
from mnist_backend.api.errors import install_error_handlers
from mnist_backend.config import Settings
from mnist_backend.metrics import HTTPMetricsMiddleware, ServiceMetrics
from mnist_backend.model import LoadedModel, ModelHolder
from mnist_backend.request_context import BodySizeLimitMiddleware, RequestContextMiddleware
from mnist_backend.security import AccessControlMiddleware, RateLimiter

logger = logging.getLogger(__name__)

API_DESCRIPTION = """Reads handwritten digits. Send 784 MNIST-style floats or any PNG/JPEG
drawing; get the digit, its confidence and all ten probabilities. Send `X-API-Key` when the
service has keys configured (staging and production always do)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = ServiceMetrics()
    holder = ModelHolder(
        settings.model_dir, settings.model_version, settings.ort_intra_op_threads, settings.ort_inter_op_threads
    )

    def load_model() -> LoadedModel | None:
        """(Re)load through the holder and keep the metrics in step with what is served."""
        model = holder.load()
        metrics.model_reloads.labels(result="success" if model else "failure").inc()
        current = holder.model
        metrics.set_model(current.version if current else None, current.test_accuracy if current else None)
        return model

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # A missing or broken model does not stop the service: /ready reports why (503).
        await run_in_threadpool(load_model)
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, load_model))
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), or no SIGHUP
            logger.debug("SIGHUP reload not available in this process")
        yield
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)

    app = FastAPI(
        title="MNIST hub inference API",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.model_holder = holder
    app.state.load_model = load_model

    for module in (health, predict, model_info, metrics_route):
        app.include_router(module.router)
    if settings.enable_bench_endpoint:
        app.include_router(bench.router)
    install_error_handlers(app)

    # Added innermost first: the request id and metrics wrap everything, 401/413/429 included.
    rate_limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
    app.add_middleware(AccessControlMiddleware, keys=settings.all_api_keys, rate_limiter=rate_limiter)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "X-Request-ID"],
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HTTPMetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log)
    _document_api_key(app, settings)
    return app


def _document_api_key(app: FastAPI, settings: Settings) -> None:
    """Declare the X-API-Key scheme in OpenAPI (enforced by ``AccessControlMiddleware``)."""
    build_default = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build_default()
        if settings.auth_enabled:
            schema.setdefault("components", {})["securitySchemes"] = {
                "APIKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            }
            for path, operations in schema["paths"].items():
                if path.startswith("/api/"):
                    for operation in operations.values():
                        operation["security"] = [{"APIKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
