"""make bench's price list takes one feature out of the real app at a time
(``benchmarks/feature_off_server.py``): each removal takes out exactly that feature and the
server still predicts. The benchmark's own test prices two of them end to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mnist_backend.api.schemas import PredictRequest
from mnist_backend.main import create_app
from tests.conftest import make_settings

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
KEY = "price-list-test-key-long-enough"  # pragma: allowlist secret - a test key
BODY = {"image": [0.0] * 300 + [1.0] * 184 + [0.0] * 300}


def feature_off_module():
    spec = importlib.util.spec_from_file_location("feature_off_server", BENCHMARKS / "feature_off_server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FEATURE_OFF = feature_off_module()


def metric(client: TestClient, prefix: str) -> float:
    lines = client.get("/metrics", headers={"X-API-Key": KEY}).text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(prefix))


@pytest.mark.parametrize("feature", sorted(FEATURE_OFF.CHOICES))
def test_each_feature_comes_out_alone_and_the_server_still_predicts(feature, model_dir, monkeypatch, tmp_path):
    # The body-validation removal replaces the class's parser: restored after the test.
    monkeypatch.setattr(PredictRequest, "model_validate_json", PredictRequest.model_validate_json)
    off = set(FEATURE_OFF.taken_out(feature))
    key_file = tmp_path / "feedback_key"
    key_file.write_text("feature-off-feedback-key-of-32-characters\n")  # pragma: allowlist secret
    feedback = {"feedback_database_url": f"sqlite:///{tmp_path / 'feedback.sqlite3'}", "feedback_key_file": key_file}
    settings = make_settings(model_dir, environment="production", api_keys=KEY, **feedback)
    # Two features are settings: the values settings_for gives them (test_..._by_its_setting).
    settings = settings.model_copy(update=FEATURE_OFF.settings_update(feature))
    app = create_app(settings)
    FEATURE_OFF.take_out(app, feature)
    with TestClient(app) as client:
        names = ("mnist_inference_images_total", "mnist_http_requests_total", "mnist_input_statistic_count")
        before = {name: metric(client, name) for name in names}
        headers = {} if "api_key" in off else {"X-API-Key": KEY}
        reply = client.post("/api/v1/predict", json=BODY, headers=headers)
        assert reply.status_code == 200, reply.text
        assert ("x-request-id" in reply.headers) == ("request_context" not in off)
        assert ("feedback_token" in reply.json()) == ("feedback_tokens" not in off)
        images = metric(client, "mnist_inference_images_total") - before["mnist_inference_images_total"]
        assert images == (0 if "prediction_metrics" in off else 1)
        requests = metric(client, "mnist_http_requests_total") - before["mnist_http_requests_total"]
        assert (requests == 0) == ("http_metrics" in off)  # the /metrics reads count otherwise
        statistics = metric(client, "mnist_input_statistic_count") - before["mnist_input_statistic_count"]
        assert (statistics == 0) == ("drift_statistics" in off)
        if "api_key" not in off:
            assert client.post("/api/v1/predict", json=BODY).status_code == 401  # the key is still asked
    assert (app.edge.max_body_bytes is None) == ("body_size_limit" in off)
    assert app.edge.predict_fast_path == ("predict_fast_path" not in off)
    assert (app.edge.access_log is None) == bool(off & {"access_log", "request_context"})
    validated = PredictRequest.model_validate_json.__name__ == "model_validate_json"
    assert validated == ("body_validation" not in off)


def test_the_access_log_and_the_feedback_tokens_come_out_by_their_setting():
    assert FEATURE_OFF.settings_for("access_log").access_log is False
    assert FEATURE_OFF.settings_for("api_key").access_log is True
    assert FEATURE_OFF.settings_for("feedback_tokens").feedback_database_url is None
    every = FEATURE_OFF.settings_for("every_feature")
    assert every.access_log is False and every.feedback_database_url is None
