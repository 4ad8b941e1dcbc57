"""A few threads that decode images, with a bounded number of requests allowed to wait.

PNG/JPEG decoding costs milliseconds (a canvas drawing) to hundreds of them (a large photo):
on the event loop it would stall every other request, ``/health`` included. Here it runs on
``DECODE_WORKERS`` threads (Pillow releases the GIL while it decodes and resizes). When
``DECODE_WORKERS + DECODE_QUEUE`` requests are already admitted, the next one is refused at
once (503 + Retry-After) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Result = TypeVar("Result")


class DecodePoolSaturatedError(RuntimeError):
    """Every decode thread is busy and the waiting room is full."""


class DecodePool:
    def __init__(self, workers: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="image-decode")
        self.capacity = workers + queue
        # Only the event loop's thread changes this, so a plain int is enough.
        self.admitted = 0

    async def run(self, function: Callable[..., Result], *args: object) -> Result:
        if self.admitted >= self.capacity:
            raise DecodePoolSaturatedError(f"all {self.capacity} image-decoding places are taken")
        self.admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        finally:
            self.admitted -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
