"""Free ports and polling: tests never sleep blindly, they wait for a condition with a timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

Result = TypeVar("Result")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    condition: Callable[[], Result], timeout: float = 60, what: str = "condition", interval: float = 0.1
) -> Result:
    """Poll ``condition`` until it returns something truthy, and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str, accept: Callable[[int], bool] = lambda status: status == 200) -> bool:
    """Whether ``url`` answers with a status ``accept`` likes (False when it does not answer)."""
    try:
        return accept(httpx.get(url, timeout=1).status_code)
    except httpx.HTTPError:
        return False
