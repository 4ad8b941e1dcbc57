"""Versions that pass every static check (schema, sha256, graph names) yet would break serving
are refused when they load, by the backend and by the model sync, and the served one stays."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from mnist_backend.main import create_app
from mnist_backend.model import MAX_METADATA_BYTES, ModelLoadError, load_model_version
from mnist_model_sync.publish import BehaviourGate, VerificationError, verify
from mnist_testkit.misbehaving_models import (
    constant_seven_graph,
    nan_graph,
    publish_graph,
    slow_graph,
    twenty_class_graph,
)
from tests.conftest import ADMIN_HEADERS, make_settings

MISBEHAVING = {
    "answers NaN": (nan_graph, "answers NaN or infinity for 100 of 100 held-out digits"),
    "has 20 classes": (twenty_class_graph, "its output for 100 digits is 100x20, not 100x10"),
    "loops for ~200 ms a digit": (slow_graph, "over the 50 ms budget (MAX_INFERENCE_MS)"),
}


@pytest.mark.parametrize("name", list(MISBEHAVING))
def test_a_misbehaving_graph_is_refused_when_it_loads(store_copy, model_version, name):
    graph, message = MISBEHAVING[name]
    bad = publish_graph(store_copy, model_version, graph(), "20991231T000000Z-0bad01")
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match="misbehaves on held-out digits") as refused:
        load_model_version(store_copy)
    assert message in str(refused.value)
    assert time.perf_counter() - started < 5  # a slow graph is run twice at most, not on every digit
    assert bad in str(refused.value)


def test_the_served_version_keeps_serving_when_the_next_one_misbehaves(store_copy, model_version):
    with TestClient(create_app(make_settings(store_copy))) as client:
        publish_graph(store_copy, model_version, twenty_class_graph(), "20991231T000000Z-0bad02")
        reload = client.post("/api/v1/admin/reload", headers=ADMIN_HEADERS)
        assert reload.status_code == 409 and "100x20, not 100x10" in reload.text
        assert client.get("/api/v1/model/info").json()["version"] == model_version
        assert client.post("/api/v1/predict", json={"image": [0.0] * 784}).status_code == 200


def test_a_service_starting_on_a_misbehaving_version_is_not_ready_and_says_why(store_copy, model_version):
    publish_graph(store_copy, model_version, nan_graph(), "20991231T000000Z-0bad03")
    with TestClient(create_app(make_settings(store_copy))) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and "answers NaN" in ready.text


def test_oversized_metadata_is_refused_before_it_is_parsed(store_copy, model_version):
    path = store_copy / model_version / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["padding"] = "x" * MAX_METADATA_BYTES  # the 50 MB metadata the audit served, at the cap's edge
    path.write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match=rf"metadata.json is \d+ bytes; at most {MAX_METADATA_BYTES} are read"):
        load_model_version(store_copy)


def test_the_sync_refuses_a_version_that_lies_about_its_accuracy(store_copy, model_version):
    """A constant 7 is a valid graph of the right shape: it loads, but scores 0.1 on the held-out
    digits while its metadata declares 0.999."""
    metadata = json.loads((store_copy / model_version / "metadata.json").read_text())
    metrics = {**metadata["metrics"], "test_accuracy": 0.999}
    liar = publish_graph(store_copy, model_version, constant_seven_graph(), "20991231T000000Z-7e7e7e", metrics=metrics)
    assert load_model_version(store_copy).behaviour.accuracy == pytest.approx(0.1)
    with pytest.raises(VerificationError, match=r"accuracy 0.1000 on 1000 held-out digits is below 0.5"):
        verify(store_copy / liar, "")
    # Under a floor of its own, what it declares still gives it away.
    with pytest.raises(VerificationError, match=r"declares test accuracy 0.9990 but scores 0.1000 on 1000 held-out"):
        verify(store_copy / liar, "", BehaviourGate(min_accuracy=0.05))
    honest = publish_graph(
        store_copy,
        model_version,
        constant_seven_graph(),
        "20991231T000000Z-7e7e7f",
        metrics={**metrics, "test_accuracy": 0.1},
    )
    verify(store_copy / honest, "", BehaviourGate(min_accuracy=0.05))  # honest and above its floor: published


def test_the_sync_publishes_the_real_version(store_copy, model_version):
    verify(store_copy / model_version, "")
    model = load_model_version(store_copy, check_digits_per_class=None)
    assert model.behaviour.digits == 1000 and model.behaviour.accuracy >= 0.95
