from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_testkit.models import trained_model_dir
from mnist_testkit.processes import start_backend
from tests.servers import REPO_ROOT, ScriptedBackend

ARTIFACTS = REPO_ROOT / "artifacts" / "frontend"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return trained_model_dir()


@pytest.fixture(scope="session")
def backend_url(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real backend process serving the default model, shared by the tests that only read."""
    backend = start_backend(model_dir, tmp_path_factory.mktemp("logs"))
    yield backend.url
    backend.stop()


@pytest.fixture
def scripted() -> Iterator[ScriptedBackend]:
    server = ScriptedBackend()
    yield server
    server.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
