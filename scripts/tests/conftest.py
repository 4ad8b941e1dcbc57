"""Helpers for the deployment-script tests: run a script, a real backend and a Slack stand-in (the kit's)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Every secret staging and production read from a file: owned by the deploy tool.
from mnist_hub.settings import SECRET_FILE_VARIABLES

from mnist_testkit.models import trained_model_dir
from mnist_testkit.processes import start_backend
from mnist_testkit.recording import RecordingServer, Reply

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run scripts/<name> from the repository root; stdout and stderr together in ``.stdout``."""
    command = [sys.executable, str(SCRIPTS / name)] if name.endswith(".py") else [str(SCRIPTS / name)]
    return subprocess.run(
        [*command, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def secret_files(folder: Path) -> dict[str, str]:
    """Every ``SECRET_FILE_VARIABLES`` pointing at one throwaway secret file written in ``folder``."""
    secret = folder / "secret"
    secret.write_text("throwaway\n")
    return dict.fromkeys(SECRET_FILE_VARIABLES, str(secret))


COMPOSE_VERSIONS = ("v1", "v2")


def compose_answers(version: str) -> bool:
    """Whether the scripts find Compose `version` (v2 may live in DOCKER_CONFIG's plugins)."""
    return run_script("compose.sh", "dev", "version", env={"COMPOSE_CLI": version}).returncode == 0


def compose_available() -> bool:
    return any(compose_answers(version) for version in COMPOSE_VERSIONS)


class Receiver(RecordingServer):
    """A local stand-in for Slack's incoming webhook: ``received`` is every POST, decoded."""

    def __init__(self, status: int = 200) -> None:
        super().__init__(default=Reply(status, b"ok"))
        self.url = f"{self.url}/services/T000/B000/XXXX"

    @property
    def received(self) -> list[dict]:
        return [
            {"path": r.path, "content_type": r.headers.get("content-type"), "json": r.json()}
            for r in self.requests
            if r.method == "POST"
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def backend_url(tmp_path_factory) -> Iterator[str]:
    """A real backend process (uvicorn) serving the default model, with one API key."""
    models = trained_model_dir()
    keys = tmp_path_factory.mktemp("secrets") / "api_keys"
    keys.write_text("# test key\nscripts-test-key\n")
    backend = start_backend(
        models,
        tmp_path_factory.mktemp("logs"),
        ENVIRONMENT="staging",
        API_KEYS_FILE=str(keys),
        # The tests fail authentication on purpose, many times, from this one address.
        AUTH_FAILURE_LIMIT="1000/minute",
    )
    yield backend.url
    backend.stop()


@pytest.fixture(scope="session")
def api_key_file(backend_url, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("client") / "api_keys"
    path.write_text("scripts-test-key\n")
    return path
