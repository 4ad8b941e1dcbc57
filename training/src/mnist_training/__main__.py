"""``python -m mnist_training`` runs the project like ``kedro run`` (same options), after
checking that the tracking server answers and takes our credentials: a dead one, or a refusal,
fails here in seconds with one sentence instead of after the training."""

from __future__ import annotations

import base64
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project

UNTRACKED_ENV = "untracked"


def _get(url: str, timeout: float, headers: dict[str, str] | None = None) -> int:
    """The status of a GET (an HTTP error status too); OSError when nothing answers."""
    # The scheme is http(s) only: tracking_server_problem checks it before any request.
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # nosec B310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # nosec B310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _credentials() -> dict[str, str]:
    """The Authorization header MLflow's client sends (basic auth, or a bearer token)."""
    if user := os.environ.get("MLFLOW_TRACKING_USERNAME"):
        pair = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    return {}


def tracking_server_problem(uri: str, timeout: float = 5.0) -> str | None:
    """Why the MLflow server at ``uri`` cannot be used (down, or it refuses our credentials), or
    None when it answers (or ``uri`` is a local store, which needs no server)."""
    if not uri.startswith(("http://", "https://")):
        return None
    base = uri.rstrip("/")
    try:
        if (status := _get(f"{base}/health", timeout)) != 200:
            return f"its /health answered {status}"
        status = _get(f"{base}/api/2.0/mlflow/experiments/search?max_results=1", timeout, _credentials())
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))
    if status in (401, 403):
        given = "refused the credentials given" if _credentials() else "wants a user"
        return f"it {given}, HTTP {status}: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    if status != 200:
        return f"its tracking API answered {status}"
    return None


def requested_env(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg in ("--env", "-e") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--env="):
            return arg.split("=", 1)[1]
    return None


def main(*args: str, **kwargs: object) -> object:
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    package_name = Path(__file__).parent.name
    configure_project(package_name)  # imports settings, which resolves MLFLOW_TRACKING_URI
    uri = os.environ["MLFLOW_TRACKING_URI"]
    if requested_env(list(args) or sys.argv[1:]) != UNTRACKED_ENV and (problem := tracking_server_problem(uri)):
        sys.exit(
            f"error: the MLflow tracking server {uri} cannot be used ({problem}): start it or fix the "
            "settings (MLFLOW_TRACKING_URI, the credentials), or train without tracking (make train "
            f"TRACKING=off, or --env {UNTRACKED_ENV})"
        )
    interactive = hasattr(sys, "ps1")
    kwargs["standalone_mode"] = not interactive
    run = find_run_command(package_name)
    return run(*args, **kwargs)


if __name__ == "__main__":
    main()
