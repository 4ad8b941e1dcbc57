"""The MLflow registry the command-line tools (``register``, ``promote``) talk to.

They need an explicit ``MLFLOW_TRACKING_URI``: without it MLflow falls back to a new, empty
``mlflow.db`` in the current folder, so a forgotten variable would "register" or "promote"
into a database nobody serves, and report success.
"""

from __future__ import annotations

import os

from mlflow import MlflowClient

MISSING_URI = (
    "set MLFLOW_TRACKING_URI to the registry's tracking server (e.g. http://127.0.0.1:5000), or to "
    "sqlite:///<checkout>/training/mlruns/mlflow.db for the embedded store `make train` uses without "
    "a server; without it MLflow would write to a new mlflow.db in the current folder"
)


# The registry's SQL stores keep a registered model's or version's description in 5,000 characters.
MAX_DESCRIPTION = 5000


class RegistryNotConfiguredError(RuntimeError):
    """``MLFLOW_TRACKING_URI`` is not set; the message says what to set."""


def registry_client() -> MlflowClient:
    """A client of the registry named by ``MLFLOW_TRACKING_URI``; no telemetry leaves the machine."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        raise RegistryNotConfiguredError(MISSING_URI)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return MlflowClient(uri)
