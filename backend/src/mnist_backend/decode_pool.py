"""Bounded admission for expensive work: image decoding threads, and whole batch requests.

PNG/JPEG decoding costs milliseconds (a canvas drawing) to hundreds of them (a large photo):
on the event loop it would stall every other request, ``/health`` included. Here it runs on
``DECODE_WORKERS`` threads (Pillow releases the GIL while it decodes and resizes). When
``DECODE_WORKERS + DECODE_QUEUE`` requests are already admitted, the next one is refused at
once (503 + Retry-After) instead of queueing without bound. Batches hold their body and its
parsed values in memory for their whole life, so only ``MAX_CONCURRENT_BATCHES`` run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Result = TypeVar("Result")


class ServiceBusyError(RuntimeError):
    """Every place of an ``Admission`` is taken; ``kind`` names which (a metric label)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Admission:
    """At most ``capacity`` requests inside at once; the next one is refused, never queued."""

    def __init__(self, capacity: int, kind: str, places: str) -> None:
        self.capacity, self.kind, self.places = capacity, kind, places
        # Only the event loop's thread changes this, so a plain int is enough.
        self.inside = 0

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        if self.inside >= self.capacity:
            raise ServiceBusyError(f"all {self.capacity} {self.places} are taken", self.kind)
        self.inside += 1
        try:
            yield
        finally:
            self.inside -= 1


class DecodePool:
    def __init__(self, workers: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="image-decode")
        self.admission = Admission(workers + queue, "image_decoding", "image-decoding places")

    async def run(self, function: Callable[..., Result], *args: object) -> Result:
        with self.admission.enter():
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
