"""Schemathesis generates requests from /openapi.json and runs all its checks on every reply:
no 5xx, every status and body as documented, schema-valid requests accepted, invalid ones refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from mnist_backend.main import create_app
from tests.conftest import REPO_ROOT, make_settings

MODEL_DIR = Path(os.environ.get("MODEL_DIR", REPO_ROOT / "models"))
app = create_app(make_settings(MODEL_DIR, access_log=False))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
# A schema-violating batch can be generated larger than MAX_BODY_BYTES: its 413 refuses it, as the
# route documents, but 413 is not among schemathesis's default statuses for refused data.
schema.config.checks.negative_data_rejection.expected_statuses.append("413")


@pytest.fixture(scope="module", autouse=True)
def _model_is_loaded():
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # runs the lifespan: loads the model
        assert client.get("/ready").status_code == 200, "no trained model: run `make train`"
        yield


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_reply_keeps_the_documented_contract(case):
    if _carries_base64_image(case.body):
        # Random base64 is never a decodable drawing, and JSON Schema cannot say what one is: the
        # 422 that names the problem is right, so only "schema-valid must be accepted" is skipped.
        case.call_and_validate(excluded_checks=[positive_data_acceptance])
    else:
        case.call_and_validate()


def _carries_base64_image(body: object) -> bool:
    if not isinstance(body, dict):
        return False
    return isinstance(body.get("image_base64"), str) or any(isinstance(i, str) for i in body.get("images") or [])
