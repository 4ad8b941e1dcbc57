"""Schemathesis generates requests from /openapi.json: whatever it sends, no 5xx."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from mnist_backend.main import create_app
from tests.conftest import REPO_ROOT, make_settings

MODEL_DIR = Path(os.environ.get("MODEL_DIR", REPO_ROOT / "models"))
app = create_app(make_settings(MODEL_DIR, access_log=False, max_batch=8))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _model_is_loaded():
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # runs the lifespan: loads the model
        assert client.get("/ready").status_code == 200, "no trained model: run `make train`"
        yield


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_produces_a_server_error(case):
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
