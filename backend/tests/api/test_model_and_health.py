from __future__ import annotations

import gc
import json
import os

import pytest
from fastapi.testclient import TestClient

from mnist_backend.main import create_app
from tests.conftest import ADMIN_HEADERS, make_settings


def test_health_and_ready_with_a_model(client, model_version):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "model_version": model_version}


def test_what_startup_built_is_frozen_out_of_the_cyclic_collector(model_dir):
    gc.unfreeze()  # whatever earlier tests froze
    with TestClient(create_app(make_settings(model_dir))):
        # Modules, the app, its schemas, the model: full collections no longer walk them.
        assert gc.get_freeze_count() > 10_000


def test_model_info_is_the_versions_metadata(client, model_dir, model_version):
    info = client.get("/api/v1/model/info").json()
    assert info == json.loads((model_dir / model_version / "metadata.json").read_text())
    assert info["metrics"]["test_accuracy"] > 0.5


def test_model_card_is_the_versions_markdown(client, model_dir, model_version):
    reply = client.get("/api/v1/model/card")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/markdown; charset=utf-8"
    assert reply.text == (model_dir / model_version / "MODEL_CARD.md").read_text()
    assert reply.text.startswith(f"# Model card: mnist-cnn {model_version}")


@pytest.mark.parametrize("card", [None, "oversized", "not utf-8"])
def test_a_version_without_a_servable_card_serves_and_says_so(store_copy, model_version, card):
    path = store_copy / model_version / "MODEL_CARD.md"
    if card is None:
        path.unlink()
    elif card == "oversized":
        path.write_text("#" * (256 * 1024 + 1))
    else:
        path.write_bytes(b"\xff\xfe card")
    with TestClient(create_app(make_settings(store_copy))) as client:
        assert client.get("/ready").status_code == 200
        reply = client.get("/api/v1/model/card")
        assert reply.status_code == 404
        assert reply.json() == {"detail": f"model version {model_version} has no model card (MODEL_CARD.md)"}


def test_openapi_documents_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    api = ("/api/v1/predict", "/api/v1/predict/batch", "/api/v1/model/info", "/api/v1/model/card")
    for path in (*api, "/health", "/ready", "/metrics"):
        assert path in paths
    body = paths["/api/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"image", "image_base64", "return_input"} <= set(body["properties"])
    assert client.get("/docs").status_code == 200


def break_model(registry, version: str, how: str) -> str:
    """Damage one version in a copied registry the way real accidents do; return the expected reason."""
    version_dir = registry / version
    if how == "missing":
        (registry / "CURRENT").unlink()
        return "does not exist"
    if how == "unknown version":
        (registry / "CURRENT").write_text("20000101T000000Z-000000\n")
        return "not found"
    if how == "corrupt onnx":
        data = (version_dir / "model.onnx").read_bytes()
        (version_dir / "model.onnx").write_bytes(data[: len(data) // 2])
        return "does not match onnx_sha256"
    if how == "schema-invalid metadata":
        metadata = json.loads((version_dir / "metadata.json").read_text())
        del metadata["input"]["std"]
        (version_dir / "metadata.json").write_text(json.dumps(metadata))
        return "breaks schema version 1 at input: 'std' is a required property"
    if how == "empty schema, empty metadata":
        # A version cannot bring its own (empty) rules: serving checks with the schema it ships.
        (version_dir / "metadata.schema.json").write_text("{}")
        (version_dir / "metadata.json").write_text("{}")
        return "schema_version None; this service understands 1"
    if how == "invalid schema, unknown schema_version":
        (version_dir / "metadata.schema.json").write_text('{"type": 12}')
        metadata = json.loads((version_dir / "metadata.json").read_text())
        metadata["schema_version"] = 99
        (version_dir / "metadata.json").write_text(json.dumps(metadata))
        return "schema_version 99; this service understands 1"
    if how == "metadata a list":
        (version_dir / "metadata.json").write_text("[]")
        return "must be a JSON object, got list"
    if how == "metadata not json":
        (version_dir / "metadata.json").write_text("{not json")
        return "not valid JSON"
    raise ValueError(how)


BREAKAGES = [
    "missing",
    "unknown version",
    "corrupt onnx",
    "schema-invalid metadata",
    "metadata not json",
    "empty schema, empty metadata",
    "invalid schema, unknown schema_version",
    "metadata a list",
]


@pytest.mark.parametrize("how", BREAKAGES)
def test_a_broken_model_gives_503_with_the_reason_while_health_stays_200(store_copy, model_version, how, caplog):
    reason = break_model(store_copy, model_version, how)
    with TestClient(create_app(make_settings(store_copy))) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert reason in ready.json()["reason"]
        predict = client.post("/api/v1/predict", json={"image": [0.0] * 784})
        assert predict.status_code == 503
        assert predict.headers["retry-after"]
        assert reason in predict.json()["detail"]
        assert "mnist_model_ready 0.0" in client.get("/metrics").text
    assert any("model load failed" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("how", ["empty schema, empty metadata", "invalid schema, unknown schema_version"])
def test_reload_to_a_broken_version_is_a_409_counted_as_a_failure(store_copy, model_version, how):
    with TestClient(create_app(make_settings(store_copy))) as client:
        broken = "20991231T235959Z-0b0b0b"
        copy_version(store_copy, model_version, broken)
        (store_copy / "CURRENT").write_text(broken + "\n")
        reason = break_model(store_copy, broken, how)
        response = client.post("/api/v1/admin/reload", headers=ADMIN_HEADERS)
        assert response.status_code == 409
        assert reason in response.json()["detail"] and f"still serving {model_version}" in response.json()["detail"]
        assert client.get("/ready").json()["model_version"] == model_version
        assert 'mnist_model_reloads_total{result="failure"} 1.0' in client.get("/metrics").text


def test_a_version_cannot_relax_the_contract_with_its_own_schema(store_copy, model_version):
    # The version's schema allows anything; serving still applies its own and names the field.
    (store_copy / model_version / "metadata.schema.json").write_text("{}")
    metadata = json.loads((store_copy / model_version / "metadata.json").read_text())
    metadata["input"]["std"] = -1
    (store_copy / model_version / "metadata.json").write_text(json.dumps(metadata))
    with TestClient(create_app(make_settings(store_copy))) as client:
        assert "at input/std" in client.get("/ready").json()["reason"]


def test_model_version_setting_overrides_current(store_copy, model_version):
    (store_copy / "CURRENT").write_text("something-else\n")
    with TestClient(create_app(make_settings(store_copy, model_version=model_version))) as client:
        assert client.get("/ready").json()["model_version"] == model_version


def test_admin_reload_switches_to_the_new_current_without_restart(store_copy, model_version):
    new_version = "20991231T235959Z-abcdef"
    copy_version(store_copy, model_version, new_version)
    with TestClient(create_app(make_settings(store_copy))) as client:
        assert client.get("/ready").json()["model_version"] == model_version
        (store_copy / "CURRENT").write_text(new_version + "\n")
        response = client.post("/api/v1/admin/reload", headers=ADMIN_HEADERS)
        assert response.json() == {"model_version": new_version, "previous_version": model_version}
        assert client.post("/api/v1/predict", json={"image": [0.0] * 784}).json()["model_version"] == new_version
        assert 'mnist_model_info{test_accuracy="' in client.get("/metrics").text
        assert new_version in client.get("/metrics").text


def test_failed_reload_keeps_serving_the_previous_model(store_copy, model_version):
    with TestClient(create_app(make_settings(store_copy))) as client:
        (store_copy / "CURRENT").write_text("20000101T000000Z-000000\n")
        response = client.post("/api/v1/admin/reload", headers=ADMIN_HEADERS)
        assert response.status_code == 409
        assert f"still serving {model_version}" in response.json()["detail"]
        assert client.get("/ready").status_code == 200
        assert 'mnist_model_reloads_total{result="failure"} 1.0' in client.get("/metrics").text


def copy_version(registry, source: str, target: str) -> None:
    """A second, valid version (same graph, its own id) to switch to."""
    (registry / target).mkdir()
    for path in (registry / source).iterdir():
        (registry / target / path.name).write_bytes(path.read_bytes())
    metadata = json.loads((registry / target / "metadata.json").read_text())
    metadata["version"] = target
    (registry / target / "metadata.json").write_text(json.dumps(metadata))
    os.sync()
