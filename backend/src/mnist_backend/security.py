"""API keys, admin keys and rate limits, as FastAPI dependencies that routes declare.

They run after routing, so a 401 or 429 is counted under the route's template, and OpenAPI
documents the key by itself, only where the service requires one (``client_dependencies``).
The rate limit is keyed on a *valid* key (never on whatever a client sends), otherwise on the
client address; failed authentications are limited per address on their own, so guessing
keys ends in 429s.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from mnist_backend.api.errors import APIError
from mnist_backend.config import Environment, Settings

API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="APIKey",
    description="required when the service has keys configured (staging and production always do)",
    auto_error=False,
)


def matching_key_index(presented: bytes | None, keys: tuple[bytes, ...]) -> int | None:
    """Which configured key ``presented`` is, compared in constant time against every key."""
    if presented is None:
        return None
    match = None
    for index, key in enumerate(keys):
        if hmac.compare_digest(presented, key) and match is None:
            match = index
    return match


class RateLimiter:
    """``limits`` fixed windows per identity, e.g. ``"100/second"`` or ``"600/minute"``."""

    def __init__(self, spec: str, setting: str = "RATE_LIMIT") -> None:
        try:
            self.limit: RateLimitItem = parse(spec)
        except ValueError as error:
            raise ValueError(f"{setting} {spec!r} is not a rate such as '100/second' or '600/minute'") from error
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    def retry_after(self, identity: str) -> int | None:
        """None when the request may go ahead (and counts it), else whole seconds until the window resets."""
        if self._limiter.hit(self.limit, identity):
            return None
        return self._seconds_left(identity)

    def _seconds_left(self, identity: str) -> int:
        reset_at = self._limiter.get_window_stats(self.limit, identity).reset_time
        return max(1, math.ceil(reset_at - time.time()))


class AccessControl:
    """Everything the ``/api/`` dependencies decide, built once from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.keys = settings.all_api_keys
        self.admin_keys = settings.all_admin_api_keys
        self.dev = settings.environment == Environment.DEV
        self.rate_limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
        self.failures = RateLimiter(settings.auth_failure_limit, "AUTH_FAILURE_LIMIT")

    def authorize(self, request: Request, presented: str | None) -> None:
        """401 without a valid key (when keys are configured), then the per-identity rate limit."""
        address = _client_address(request)
        identity = "ip:" + address
        if self.keys:
            index = matching_key_index(presented.encode() if presented else None, self.keys)
            if index is None:
                self._refuse(address, presented)
            identity = f"key:{index}"
        self._limit(identity)

    def authorize_admin(self, request: Request, presented: str | None) -> None:
        """Admin operations: an admin key; without admin keys configured, dev's own machine only."""
        address = _client_address(request)
        if not self.admin_keys:
            if self.dev and _is_loopback(address):
                return
            raise APIError(403, "admin operations are disabled: set ADMIN_API_KEYS (or use SIGHUP)")
        encoded = presented.encode() if presented else None
        if matching_key_index(encoded, self.admin_keys) is not None:
            return
        if matching_key_index(encoded, self.keys) is not None:
            raise APIError(403, "this API key may not call admin operations; send an admin key (ADMIN_API_KEYS)")
        self._refuse(address, presented)

    def _refuse(self, address: str, presented: str | None) -> None:
        retry_after = self.failures.retry_after("auth:" + address)
        if retry_after is not None:
            raise APIError(
                429,
                f"too many failed authentications from this address ({self.failures.limit}); retry in {retry_after} s",
                {"Retry-After": str(retry_after)},
            )
        detail = "invalid API key" if presented else "missing API key: send it in the X-API-Key header"
        raise APIError(401, detail, {"WWW-Authenticate": "APIKey"})

    def _limit(self, identity: str) -> None:
        if self.rate_limiter is None:
            return
        retry_after = self.rate_limiter.retry_after(identity)
        if retry_after is not None:
            detail = f"rate limit of {self.rate_limiter.limit} exceeded; retry in {retry_after} s"
            raise APIError(429, detail, {"Retry-After": str(retry_after)})


def _client_address(request: Request) -> str:
    # uvicorn puts the X-Forwarded-For address here only for TRUSTED_PROXIES.
    return request.client.host if request.client else "unknown"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _access_control(request: Request) -> AccessControl:
    return request.app.state.access_control


# Set on a request's scope by a layer that already ran ``authorize`` for it (predict_fast_path.py,
# which hands the requests it does not answer to the routes): a request is counted once.
AUTHORIZED = "mnist.authorized"


async def require_api_key(request: Request, api_key: Annotated[str | None, Security(API_KEY_HEADER)]) -> None:
    """The client routes' dependency when keys are configured: a valid key, within the rate limit."""
    if not request.scope.get(AUTHORIZED):
        _access_control(request).authorize(request, api_key)


async def limit_rate(request: Request) -> None:
    """The client routes' dependency without keys (dev): the rate limit per address, no key asked."""
    if not request.scope.get(AUTHORIZED):
        _access_control(request).authorize(request, None)


def client_dependencies(settings: Settings) -> list[Any]:
    """What every client route depends on; OpenAPI declares the key only where one is required."""
    return [Depends(require_api_key)] if settings.auth_enabled else [Depends(limit_rate)]


async def require_admin_key(request: Request, api_key: Annotated[str | None, Security(API_KEY_HEADER)]) -> None:
    """Dependency of the admin routes: an admin key (ADMIN_API_KEYS)."""
    _access_control(request).authorize_admin(request, api_key)


AdminKeyRequired = Depends(require_admin_key)
