"""API keys and per-client rate limits, enforced in front of the ``/api/`` routes."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from mnist_backend.asgi import header_value, send_json_error

API_KEY_HEADER = b"x-api-key"
PROTECTED_PREFIX = "/api/"


def api_key_is_valid(presented: bytes | None, keys: tuple[bytes, ...]) -> bool:
    """Constant-time comparison against every configured key (no early exit on a match)."""
    if presented is None:
        return False
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(presented, key)
    return valid


class RateLimiter:
    """``limits`` fixed windows per client, e.g. ``"100/second"`` or ``"600/minute"``."""

    def __init__(self, spec: str) -> None:
        try:
            self.limit = parse(spec)
        except ValueError as error:
            raise ValueError(f"RATE_LIMIT {spec!r} is not a rate such as '100/second' or '600/minute'") from error
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """None when the request may go ahead, else whole seconds until the window resets."""
        if self._limiter.hit(self.limit, client):
            return None
        reset_at = self._limiter.get_window_stats(self.limit, client).reset_time
        return max(1, math.ceil(reset_at - time.time()))


class AccessControlMiddleware:
    """401 without a valid ``X-API-Key`` (when keys are configured), 429 over the rate limit."""

    def __init__(self, app: ASGIApp, keys: tuple[bytes, ...], rate_limiter: RateLimiter | None) -> None:
        self.app = app
        self.keys = keys
        self.rate_limiter = rate_limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX) or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        presented = header_value(scope, API_KEY_HEADER)
        if self.keys and not api_key_is_valid(presented, self.keys):
            detail = "invalid API key" if presented else "missing API key: send it in the X-API-Key header"
            await send_json_error(send, 401, detail, [(b"www-authenticate", b"APIKey")])
            return
        if self.rate_limiter is not None:
            client = _client_identity(scope, presented)
            retry_after = self.rate_limiter.retry_after(client)
            if retry_after is not None:
                detail = f"rate limit of {self.rate_limiter.limit} exceeded; retry in {retry_after} s"
                await send_json_error(send, 429, detail, [(b"retry-after", str(retry_after).encode())])
                return
        await self.app(scope, receive, send)


def _client_identity(scope: Scope, api_key: bytes | None) -> str:
    """Limit per API key when there is one (hashed: keys never sit in memory twice), else per IP."""
    if api_key:
        return "key:" + hashlib.sha256(api_key).hexdigest()[:16]
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")
