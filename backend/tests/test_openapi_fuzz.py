"""Schemathesis generates requests from /openapi.json and runs all its checks on every reply:
no 5xx, every status and body as documented, schema-valid requests accepted, schema-invalid
ones refused, and with keys configured, no operation that declares a key answers without one.
Twice: in dev (no keys) and as staging and production run (API and admin keys).

FUZZ_EXAMPLES sets the examples per operation (500 in `make test`; fewer for a quick look).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from mnist_backend.main import create_app
from tests.conftest import ADMIN_KEY, REPO_ROOT, make_settings

MODEL_DIR = Path(os.environ.get("MODEL_DIR", REPO_ROOT / "models"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
CLIENT_KEY = "fuzz-client-key-long-enough"  # pragma: allowlist secret

# MAX_BATCH 4: the schema states the configured limit, and generating batches of up to 256
# arrays of 784 numbers would cost the run minutes without reaching another branch.
dev_app = create_app(make_settings(MODEL_DIR, access_log=False, admin_api_keys="", max_batch=4))
# The keyed app takes feedback (into SQLite), so its routes are fuzzed taking it.
FEEDBACK_DIR = Path(tempfile.mkdtemp(prefix="fuzz-feedback-"))
(FEEDBACK_DIR / "key").write_text("fuzz-feedback-signing-key-of-32-characters\n")  # pragma: allowlist secret
keyed_app = create_app(
    make_settings(
        MODEL_DIR,
        max_batch=4,
        access_log=False,
        environment="staging",
        api_keys=CLIENT_KEY,
        rate_limit="100000/second",
        auth_failure_limit="100000/second",
        feedback_database_url=f"sqlite:///{FEEDBACK_DIR / 'feedback.sqlite3'}",
        feedback_key_file=FEEDBACK_DIR / "key",
    )
)
dev = schemathesis.openapi.from_asgi("/openapi.json", dev_app)
keyed = schemathesis.openapi.from_asgi("/openapi.json", keyed_app)
for schema in (dev, keyed):
    # A schema-violating batch can be generated larger than MAX_BODY_BYTES: its 413 refuses it, as
    # the route documents, but 413 is not among schemathesis's default statuses for refused data.
    schema.config.checks.negative_data_rejection.expected_statuses.append("413")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module", autouse=True)
def _models_are_loaded():
    with TestClient(dev_app) as dev_client, TestClient(keyed_app) as keyed_client:  # run the lifespans
        for client in (dev_client, keyed_client):
            assert client.get("/ready").status_code == 200, "no trained model: run `make train`"
        yield


@dev.parametrize()
@FUZZ
def test_every_reply_keeps_the_documented_contract_in_dev(case):
    case.call_and_validate(excluded_checks=_unknowable(case))


@keyed.parametrize()
@FUZZ
def test_every_reply_keeps_the_documented_contract_with_keys(case):
    key = ADMIN_KEY if case.path.startswith("/api/v1/admin") else CLIENT_KEY
    case.call_and_validate(headers={"X-API-Key": key}, excluded_checks=_unknowable(case))


def _unknowable(case: schemathesis.Case) -> list:
    """Where JSON Schema cannot say what is valid, "schema-valid must be accepted" is skipped:
    random base64 is never a decodable drawing (the 422 names the problem), and an inference
    tensor's data must hold as many values as its shape multiplies to (the 400 says how many), and
    a generated feedback token is never one the service signed (the 403 says so). Every other
    check runs on them."""
    body = case.body if isinstance(case.body, dict) else {}
    images = body.get("images")
    base64_image = isinstance(body.get("image_base64"), str) or (
        isinstance(images, list) and any(isinstance(i, str) for i in images)
    )
    unknowable = base64_image or case.path.endswith(("/infer", "/api/v1/feedback"))
    return [positive_data_acceptance] if unknowable else []
