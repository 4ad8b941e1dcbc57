from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_testkit.processes import start_backend
from tests.servers import REPO_ROOT, ScriptedBackend

ARTIFACTS = REPO_ROOT / "artifacts" / "frontend"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = Path(os.environ.get("MODEL_DIR", REPO_ROOT / "models"))
    if not (path / "CURRENT").is_file():
        pytest.fail(f"no trained model in {path}: run `make train` (or `make test`, which trains one when missing)")
    return path


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
