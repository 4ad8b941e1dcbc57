from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from mnist_backend import security
from mnist_backend.config import Settings
from mnist_backend.main import create_app
from mnist_backend.security import matching_key_index
from tests.conftest import make_settings

IMAGE = {"image": [0.0] * 784}


@pytest.fixture
def secured(model_dir):
    settings = make_settings(model_dir, environment="staging", api_keys="first-client-key-1, second-client-key-2")
    with TestClient(create_app(settings)) as client:
        yield client


def test_missing_key_is_a_401(secured):
    response = secured.post("/api/v1/predict", json=IMAGE)
    assert response.status_code == 401
    assert "missing API key" in response.json()["detail"]


def test_wrong_key_is_a_401(secured):
    response = secured.post("/api/v1/predict", json=IMAGE, headers={"X-API-Key": "third-client-key-3"})
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid API key"


@pytest.mark.parametrize("key", ["first-client-key-1", "second-client-key-2"])
def test_any_configured_key_is_accepted(secured, key):
    assert secured.post("/api/v1/predict", json=IMAGE, headers={"X-API-Key": key}).status_code == 200
    assert secured.get("/api/v1/model/info", headers={"X-API-Key": key}).status_code == 200


def test_probes_and_metrics_need_no_key(secured):
    for path in ("/health", "/ready", "/metrics", "/openapi.json"):
        assert secured.get(path).status_code == 200


def test_openapi_declares_the_api_key(secured):
    schema = secured.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKey"]["name"] == "X-API-Key"
    assert schema["paths"]["/api/v1/predict"]["post"]["security"] == [{"APIKey": []}]


def test_keys_can_come_from_several_files(model_dir, tmp_path):
    clients, page = tmp_path / "api_keys", tmp_path / "frontend_api_key"
    clients.write_text("# comment\nthe-client-api-key\n\n")
    page.write_text("the-page-api-key-1\n")
    settings = make_settings(model_dir, environment="production", api_keys_file=f"{clients},{page}")
    with TestClient(create_app(settings)) as client:
        for key in ("the-client-api-key", "the-page-api-key-1"):
            assert client.post("/api/v1/predict", json=IMAGE, headers={"X-API-Key": key}).status_code == 200


def test_admin_operations_need_an_admin_key(model_dir):
    keys = {"api_keys": "the-client-api-key", "admin_api_keys": "the-admin-api-key1"}  # pragma: allowlist secret
    settings = make_settings(model_dir, environment="staging", **keys)
    with TestClient(create_app(settings)) as client:
        ordinary = client.post("/api/v1/admin/reload", headers={"X-API-Key": "the-client-api-key"})
        assert ordinary.status_code == 403 and "may not call admin operations" in ordinary.json()["detail"]
        assert client.post("/api/v1/admin/reload").status_code == 401
        admin = {"X-API-Key": "the-admin-api-key1"}  # pragma: allowlist secret - a test key
        assert client.post("/api/v1/admin/reload", headers=admin).status_code == 200
        # An admin key is not an API key: it cannot predict.
        assert client.post("/api/v1/predict", json=IMAGE, headers=admin).status_code == 401


@pytest.mark.parametrize(
    ("environment", "address", "status"),
    [("staging", "127.0.0.1", 403), ("dev", "172.17.0.1", 403), ("dev", "127.0.0.1", 200), ("dev", "::1", 200)],
)
def test_without_admin_keys_only_dev_on_this_machine_may_reload(model_dir, environment, address, status):
    keys = {"api_keys": "the-client-api-key"} if environment != "dev" else {}  # pragma: allowlist secret - a test key
    settings = make_settings(model_dir, environment=environment, admin_api_keys="", **keys)
    with TestClient(create_app(settings), client=(address, 50000)) as client:
        reply = client.post("/api/v1/admin/reload", headers={"X-API-Key": "the-client-api-key"})
    assert reply.status_code == status
    if status == 403:
        assert "admin operations are disabled: set ADMIN_API_KEYS" in reply.json()["detail"]


def test_empty_variables_count_as_unset(model_dir, monkeypatch):
    # Compose passes `MODEL_VERSION: ${MODEL_VERSION:-}` through as an empty string.
    for name in ("MODEL_VERSION", "RATE_LIMIT", "API_KEYS"):
        monkeypatch.setenv(name, "")
    settings = Settings(model_dir=model_dir)
    assert (settings.model_version, settings.rate_limit, settings.all_api_keys) == (None, None, ())


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_refuses_to_start_outside_dev_without_keys(environment, model_dir):
    with pytest.raises(ValidationError, match=f"ENVIRONMENT={environment} needs API keys"):
        Settings(model_dir=model_dir, environment=environment)


def test_key_comparison_checks_every_key(monkeypatch):
    compared = []

    def counting_compare(presented: bytes, key: bytes) -> bool:
        compared.append(key)
        return presented == key

    monkeypatch.setattr(security.hmac, "compare_digest", counting_compare)
    keys = (b"alpha", b"beta", b"gamma")
    assert matching_key_index(b"alpha", keys) == 0  # a match on the first key still compares all three
    assert compared == list(keys)
    compared.clear()
    assert matching_key_index(b"bet", keys) is None
    assert compared == list(keys)
    assert matching_key_index(None, keys) is None


def test_rate_limit_gives_429_with_retry_after(model_dir):
    with TestClient(create_app(make_settings(model_dir, rate_limit="3/minute"))) as client:
        statuses = [client.post("/api/v1/predict", json=IMAGE).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = client.post("/api/v1/predict", json=IMAGE)
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "rate limit of 3 per 1 minute exceeded" in limited.json()["detail"]
        assert client.get("/health").status_code == 200  # probes are never limited


def test_rate_limit_is_per_api_key(model_dir):
    settings = make_settings(model_dir, api_keys="a,b", rate_limit="2/minute")
    with TestClient(create_app(settings)) as client:
        for _ in range(2):
            assert client.post("/api/v1/predict", json=IMAGE, headers={"X-API-Key": "a"}).status_code == 200
        assert client.post("/api/v1/predict", json=IMAGE, headers={"X-API-Key": "a"}).status_code == 429
        assert client.post("/api/v1/predict", json=IMAGE, headers={"X-API-Key": "b"}).status_code == 200


def test_bad_rate_limit_setting_is_refused_with_the_value(model_dir):
    with pytest.raises(ValidationError, match="rate_limit\n  Value error, 'lots' is not a rate such as '100/second'"):
        make_settings(model_dir, rate_limit="lots")


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_outside_dev_every_key_must_be_long_enough(model_dir, environment):
    keys = {"api_keys": "the-client-api-key", "admin_api_keys": "admin"}  # pragma: allowlist secret
    with pytest.raises(ValidationError, match="admin API key 1 of 1 is shorter than 16 characters"):
        make_settings(model_dir, environment=environment, **keys)
    short = {"api_keys": "short", "admin_api_keys": "admin"}  # pragma: allowlist secret
    make_settings(model_dir, environment="dev", **short)  # dev: any key


def test_cors_allows_only_configured_origins(model_dir):
    settings = make_settings(model_dir, cors_origins="http://localhost:8501")
    with TestClient(create_app(settings)) as client:
        ok = client.options(
            "/api/v1/predict",
            headers={"Origin": "http://localhost:8501", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers["access-control-allow-origin"] == "http://localhost:8501"
        other = client.get("/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_request_id_is_honoured_and_echoed(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) == 32
    # Ids that could forge log lines are replaced, not echoed.
    assert client.get("/health", headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"] != "a b\tc"
