"""``python -m mnist_backend``: serve with uvicorn, configured from the environment."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from mnist_backend.api.errors import describe_validation_errors
from mnist_backend.config import Settings
from mnist_backend.http_limits import bounded_protocol
from mnist_backend.logging_setup import configure_logging
from mnist_backend.main import create_app


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        errors = error.errors(include_url=False)
        sys.exit(f"mnist-backend: invalid configuration: {describe_validation_errors(errors)}")
    configure_logging(settings.log_level, settings.log_format)
    serve(create_app(settings), settings)


def serve(app: FastAPI, settings: Settings) -> None:
    """uvicorn as the service runs it (make bench's price list serves variants of the app this way)."""
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep ours
        access_log=False,  # RequestContextMiddleware logs each request with its id
        server_header=False,
        # X-Forwarded-For is believed only from the proxies named in TRUSTED_PROXIES.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        http=bounded_protocol(settings.max_header_bytes, settings.header_timeout_s, settings.body_timeout_s),
        loop=settings.event_loop,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_connections,
    )


if __name__ == "__main__":
    main()
