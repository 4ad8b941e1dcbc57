"""What the routes call: issue a token with an answer, take a correction, review, snapshot.

Store calls run on threads, at most ``FEEDBACK_MAX_CONCURRENT`` at once (more get 503 at once,
never a queue that holds threads while the database is away), each bounded by the store's own
connect and pool timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import numpy as np
from starlette.concurrency import run_in_threadpool

from mnist_backend.config import Settings
from mnist_backend.decode_pool import Admission, ServiceBusyError
from mnist_backend.feedback.store import CorrectionGroup, FeedbackStore, StoreUnavailableError, database_url
from mnist_backend.feedback.tokens import FeedbackSigner, TokenClaims
from mnist_backend.metrics import ServiceMetrics
from mnist_contract.feedback_snapshot import FeedbackSnapshot

logger = logging.getLogger(__name__)
Result = TypeVar("Result")
# Retention runs this often (each replica; deleting what is already gone costs nothing).
RETENTION_INTERVAL_S = 3600.0


class FeedbackService:
    def __init__(self, settings: Settings, metrics: ServiceMetrics, clock: Callable[[], float] = time.time) -> None:
        if not settings.feedback_database_url:
            raise ValueError("feedback needs FEEDBACK_DATABASE_URL")
        keys = settings.feedback_keys
        if keys:
            self.signer = FeedbackSigner(keys, settings.feedback_token_ttl_s)
        else:
            logger.warning("FEEDBACK_KEY_FILE is not set: feedback tokens are signed with a key of this process only")
            self.signer = FeedbackSigner.with_random_key(settings.feedback_token_ttl_s)
        url = database_url(settings.feedback_database_url, settings.feedback_database_password)
        self.store = FeedbackStore(url)
        self.metrics = metrics
        self.clock = clock
        self.retention = timedelta(days=settings.feedback_retention_days)
        self.admission = Admission(settings.feedback_max_concurrent, "feedback_store", "feedback store places")

    def issue(self, model_version: str, pixels: np.ndarray, digit: int, confidence: float) -> dict[str, str]:
        """The fields a prediction answer carries so that it can be corrected (no store call)."""
        prediction_id, token = self.signer.issue(model_version, pixels, digit, confidence, self.clock())
        return {"prediction_id": prediction_id, "feedback_token": token}

    def verify(self, prediction_id: str, token: str) -> TokenClaims:
        return self.signer.verify(prediction_id, token, self.clock())

    async def record(self, claims: TokenClaims, label: int, key_hash: str | None) -> bool:
        now = datetime.fromtimestamp(self.clock(), UTC)
        try:
            created = await self._call(self.store.record, claims, label, key_hash, now)
        except StoreUnavailableError:
            self.metrics.feedback_refused.labels(reason="store_unavailable").inc()
            raise
        if created:  # one vote per prediction: a changed mind updates the row, not the count
            verdict = "right" if label == claims.predicted_digit else "wrong"
            self.metrics.feedback.labels(model_version=claims.model_version, verdict=verdict).inc()
        return created

    async def pending(self, limit: int) -> tuple[dict[str, int], list[CorrectionGroup]]:
        counts = await self._call(self.store.counts)
        return counts, await self._call(self.store.pending_groups, limit)

    async def review(self, groups: list[tuple[str, int]], accept: bool) -> int:
        return await self._call(self.store.review, groups, accept, datetime.fromtimestamp(self.clock(), UTC))

    async def snapshot(self) -> FeedbackSnapshot:
        return await self._call(self.store.snapshot)

    async def purge_unreviewed(self) -> int:
        cutoff = datetime.fromtimestamp(self.clock(), UTC) - self.retention
        return await self._call(self.store.purge_unreviewed, cutoff)

    async def keep_retention(self, interval_s: float = RETENTION_INTERVAL_S) -> None:
        """Delete expired unreviewed corrections now and every ``interval_s``; a database that is
        away is tried again next time."""
        while True:
            try:
                deleted = await self.purge_unreviewed()
                if deleted:
                    logger.info("feedback retention: deleted %d unreviewed corrections", deleted)
            except (StoreUnavailableError, ServiceBusyError) as error:
                logger.warning("feedback retention skipped: %s", error)
            await asyncio.sleep(interval_s)

    async def _call(self, function: Callable[..., Result], *args: object) -> Result:
        with self.admission.enter():
            return await run_in_threadpool(function, *args)

    def close(self) -> None:
        self.store.close()
