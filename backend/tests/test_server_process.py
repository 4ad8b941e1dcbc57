"""The service as users run it: `python -m mnist_backend` in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from mnist_testkit.waiting import free_port, wait_until
from tests.api.test_model_and_health import copy_version


def test_real_server_predicts_and_logs_json_with_request_ids_but_no_image_data(start_server, model_dir, model_version):
    server = start_server(MODEL_DIR=str(model_dir), LOG_FORMAT="json")
    image = [0.123456] * 784
    response = httpx.post(server.url + "/api/v1/predict", json={"image": image}, headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 200
    assert response.json()["model_version"] == model_version
    assert response.headers["x-request-id"] == "trace-42"
    assert "server" not in response.headers  # no version banner
    server.stop()

    records = server.log_records()
    access = [r for r in records if r.get("event") == "request" and r.get("request_id") == "trace-42"]
    assert access and access[0]["route"] == "/api/v1/predict" and access[0]["status"] == 200
    assert any(r.get("event") == "model_loaded" and r.get("model_version") == model_version for r in records)
    assert "0.123456" not in server.log_path.read_text()


def test_sighup_switches_the_served_version_without_a_restart(start_server, store_copy, model_version):
    server = start_server(MODEL_DIR=str(store_copy), LOG_FORMAT="json")
    assert httpx.get(server.url + "/ready").json()["model_version"] == model_version
    new_version = "20991231T235959Z-0a0b0c"
    copy_version(store_copy, model_version, new_version)
    (store_copy / "CURRENT").write_text(new_version + "\n")
    pid = server.process.pid
    server.process.send_signal(signal.SIGHUP)
    wait_until(
        lambda: httpx.get(server.url + "/ready").json().get("model_version") == new_version,
        what="the new version to be served",
    )
    assert server.process.pid == pid and server.process.poll() is None


def reload_count(url: str, result: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(f'mnist_model_reloads_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_with_a_reload_interval_it_follows_current_and_refuses_a_broken_version_once(
    start_server, store_copy, model_version
):
    """What the model sync relies on: writing CURRENT is enough. A version that cannot load is
    tried once (logged, counted), the served one keeps serving, the next good one is taken."""
    server = start_server(MODEL_DIR=str(store_copy), LOG_FORMAT="json", MODEL_RELOAD_INTERVAL_S="0.2")
    assert httpx.get(server.url + "/ready").json()["model_version"] == model_version

    broken = "20991231T235958Z-0b0b0b"
    copy_version(store_copy, model_version, broken)
    (store_copy / broken / "model.onnx").write_bytes(b"not an onnx model")
    (store_copy / "CURRENT").write_text(broken + "\n")
    wait_until(lambda: reload_count(server.url, "failure") == 1, what="the broken version to be refused")
    time.sleep(1)  # five more looks at CURRENT: not tried again
    assert reload_count(server.url, "failure") == 1
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == model_version

    good = "20991231T235959Z-0a0b0c"
    copy_version(store_copy, model_version, good)
    (store_copy / "CURRENT").write_text(good + "\n")
    wait_until(lambda: httpx.get(server.url + "/ready").json().get("model_version") == good, what="the next version")
    assert reload_count(server.url, "success") == 2  # start-up, then the switch
    server.stop()
    assert any(r.get("event") == "model_load_failed" for r in server.log_records())


def test_missing_model_keeps_the_process_up_and_not_ready(start_server, tmp_path):
    server = start_server(MODEL_DIR=str(tmp_path / "empty"), LOG_FORMAT="json")
    assert httpx.get(server.url + "/health").status_code == 200
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 503
    assert "does not exist" in ready.json()["reason"]
    server.stop()
    assert any(r.get("event") == "model_load_failed" for r in server.log_records())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ENVIRONMENT": "staging", "API_KEYS": ""}, "ENVIRONMENT=staging needs API keys"),
        ({"RATE_LIMIT": "banana"}, "rate_limit: 'banana' is not a rate such as '100/second'"),
        ({"AUTH_FAILURE_LIMIT": "10 per minute please"}, "auth_failure_limit: '10 per minute please' is not a rate"),
        (
            {"ENVIRONMENT": "production", "API_KEYS": "a-long-enough-api-key,short"},  # pragma: allowlist secret
            "API key 2 of 2 is shorter than 16 characters",
        ),
    ],
)
def test_a_bad_setting_refuses_to_start_with_a_clear_message(model_dir, settings, message):
    result = subprocess.run(
        [sys.executable, "-m", "mnist_backend"],
        env={**os.environ, "MODEL_DIR": str(model_dir), "PORT": str(free_port()), **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "short" not in result.stderr.replace("shorter", "")  # never the key itself
