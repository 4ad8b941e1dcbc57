"""``python -m mnist_model_sync [--once]``: keep MODEL_DIR at the version MODEL_ALIAS names.

Settings (environment): MLFLOW_TRACKING_URI (the tracking server), MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_PASSWORD_FILE, MODEL_NAME (mnist-cnn), MODEL_ALIAS
(staging, production, canary, ...; or a registry version number to pin one), MODEL_DIR (/models),
SYNC_INTERVAL_S (30), SYNC_METRICS_PORT (9101; 0: none), KEEP_VERSIONS (5), and the behaviour gate
every version passes on the held-out digits before it is published: SYNC_MIN_ACCURACY (0.5),
SYNC_ACCURACY_TOLERANCE (0.05 below the test accuracy it declares), MAX_INFERENCE_MS (50).
``--once``: one look, exit 0 when MODEL_DIR holds the alias's version (the init step); otherwise
a look every SYNC_INTERVAL_S, forever (the sidecar).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from prometheus_client import Counter, Gauge, start_http_server
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mnist_model_sync.publish import BehaviourGate
from mnist_model_sync.registry import RegistryClient, RegistryError
from mnist_model_sync.sync import Outcome, sync_once

logger = logging.getLogger("mnist_model_sync")

SYNCS = Counter("mnist_model_sync_total", "Looks at the registry, by result", ["result"])
SERVED = Gauge(
    "mnist_model_sync_version_info",
    "The version MODEL_DIR holds (value 1)",
    ["alias", "model_version", "registry_version"],
)
LAST_SUCCESS = Gauge("mnist_model_sync_last_success_timestamp_seconds", "When MODEL_DIR last matched the alias")


class SyncSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True, frozen=True, protected_namespaces=())

    mlflow_tracking_uri: str
    mlflow_tracking_username: str = ""
    mlflow_tracking_password: SecretStr = SecretStr("")
    mlflow_tracking_password_file: Path | None = None
    model_name: str = "mnist-cnn"
    model_alias: str = Field(min_length=1)
    model_dir: Path = Path("/models")
    sync_interval_s: float = Field(30, gt=0)
    sync_metrics_port: int = Field(9101, ge=0, le=65535)
    keep_versions: int = Field(5, ge=1)
    sync_min_accuracy: float = Field(0.5, ge=0, le=1)
    sync_accuracy_tolerance: float = Field(0.05, ge=0, le=1)
    max_inference_ms: float = Field(50.0, gt=0)

    def gate(self) -> BehaviourGate:
        return BehaviourGate(self.sync_min_accuracy, self.sync_accuracy_tolerance, self.max_inference_ms)

    def password(self) -> str:
        if self.mlflow_tracking_password_file:
            return self.mlflow_tracking_password_file.read_text().strip()
        return self.mlflow_tracking_password.get_secret_value()


def record(outcome: Outcome, alias: str, last: Outcome | None = None) -> None:
    """Count every look; log what changed (a refusal once, not at every look)."""
    SYNCS.labels(result=outcome.result).inc()
    if outcome.result in ("published", "unchanged"):
        LAST_SUCCESS.set_to_current_time()
        SERVED.clear()
        SERVED.labels(alias, outcome.version_id, outcome.registry_version).set(1)
    level = logging.WARNING if outcome.result in ("refused", "unavailable") else logging.INFO
    repeated = last is not None and (last.result, last.registry_version) == (outcome.result, outcome.registry_version)
    if outcome.result != "unchanged" and not repeated:
        logger.log(level, "%s: %s", outcome.result, outcome.detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_model_sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="one look; exit 0 when MODEL_DIR holds the alias's version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s model-sync: %(message)s")
    try:
        settings = SyncSettings()
        client = RegistryClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_username, settings.password())
    except (ValidationError, RegistryError, OSError) as error:
        print(f"model-sync: error: invalid settings: {error}", file=sys.stderr)
        return 2
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    look = (settings.model_name, settings.model_alias, settings.model_dir, settings.keep_versions)
    gate = settings.gate()
    if args.once:
        outcome = sync_once(client, *look, gate=gate)
        record(outcome, settings.model_alias)
        print(f"model-sync: {outcome.result}: {outcome.detail}", file=sys.stderr)
        return 0 if outcome.result in ("published", "unchanged") else 1
    if settings.sync_metrics_port:
        start_http_server(settings.sync_metrics_port)
    logger.info(
        "following %s@%s from %s into %s every %g s",
        settings.model_name,
        settings.model_alias,
        settings.mlflow_tracking_uri,
        settings.model_dir,
        settings.sync_interval_s,
    )
    refused: set[str] = set()
    last: Outcome | None = None
    # As a container's PID 1, Python has no default action for SIGTERM: without a handler the
    # sidecar ignores it and every pod takes its whole grace period to stop. A look in progress
    # finishes (a publication is never cut between its two renames); the next one does not start.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        try:
            outcome = sync_once(client, *look, refused, gate)
        except Exception as error:  # the sidecar outlives a bad answer; the next look may work
            logger.exception("unexpected failure")
            outcome = Outcome("unavailable", f"unexpected {type(error).__name__}: {error}")
        record(outcome, settings.model_alias, last)
        last = outcome
        stop.wait(settings.sync_interval_s)
    logger.info("stopping (SIGTERM)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
