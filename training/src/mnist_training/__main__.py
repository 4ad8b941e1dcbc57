"""``python -m mnist_training`` runs the project like ``kedro run`` (same options), after
checking that the tracking server answers: a dead one fails here in seconds with one sentence."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project

UNTRACKED_ENV = "untracked"


def tracking_server_problem(uri: str, timeout: float = 5.0) -> str | None:
    """Why the MLflow server at ``uri`` cannot be used, or None when it answers (or ``uri`` is
    a local store, which needs no server)."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        # bandit B310: the scheme is checked just above (http or https only).
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:  # noqa: S310  # nosec B310
            if response.status == 200:
                return None
            return f"its /health answered {response.status}"
    except urllib.error.HTTPError as error:
        return f"its /health answered {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


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
            f"error: the MLflow tracking server {uri} cannot be reached ({problem}): start it, point "
            "MLFLOW_TRACKING_URI at one that runs, or train without tracking (make train TRACKING=off, "
            f"or --env {UNTRACKED_ENV})"
        )
    interactive = hasattr(sys, "ps1")
    kwargs["standalone_mode"] = not interactive
    run = find_run_command(package_name)
    return run(*args, **kwargs)


if __name__ == "__main__":
    main()
