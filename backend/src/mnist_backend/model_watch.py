"""Follow ``models/CURRENT``: when it names another version, switch through the same reload path
as SIGHUP and the admin call. Whatever fills the folder (the model sync from a registry, a
person, training) needs no access to the serving process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from mnist_backend.model import LoadedModel, ModelHolder, ModelLoadError, resolve_version

logger = logging.getLogger(__name__)


async def follow_current(holder: ModelHolder, load_model: Callable[[], LoadedModel | None], interval_s: float) -> None:
    """Runs until cancelled. A version that fails to load is tried once (the failure is logged and
    counted by ``load_model``) and not again until CURRENT names something else: the version
    served before keeps serving."""
    refused: str | None = None
    while True:
        await asyncio.sleep(interval_s)
        try:
            named = resolve_version(holder.model_dir, None)
        except ModelLoadError:
            continue  # CURRENT is being replaced, or gone: keep serving what is loaded
        served = holder.model.version if holder.model else None
        if named in (served, refused):
            continue
        logger.info("models/CURRENT names %s (serving %s): reloading", named, served)
        refused = None if await run_in_threadpool(load_model) else named
