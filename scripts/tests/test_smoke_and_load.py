"""test-integration.sh and load-test.py against a real backend process."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from mnist_testkit.waiting import free_port
from tests.conftest import run_script


def run_integration_test(
    backend_url: str, frontend_url: str, api_key_file: Path, *extra: str
) -> subprocess.CompletedProcess:
    return run_script(
        "test-integration.sh",
        "--backend-url",
        backend_url,
        "--frontend-url",
        frontend_url,
        "--api-key-file",
        str(api_key_file),
        "--timeout",
        "20",
        *extra,
    )


def test_integration_test_passes_the_backend_and_names_what_fails(backend_url, api_key_file):
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_integration_test(backend_url, closed, api_key_file)
    assert result.returncode == 1
    assert "ok    prediction: a held-out 7 is read as 7" in result.stdout
    assert "ok    API key enforced (401 without it)" in result.stdout
    assert "ok    metrics served" in result.stdout
    assert "FAIL  frontend /_stcore/health answered 000" in result.stdout
    assert "integration test: FAILED (2 check(s))" in result.stdout


def test_integration_test_reports_a_wrong_api_key(backend_url, tmp_path):
    wrong = tmp_path / "key"
    wrong.write_text("not-the-key\n")
    result = run_integration_test(backend_url, backend_url, wrong)
    assert result.returncode == 1
    assert "FAIL  prediction: expected 200 and digit 7, got 401" in result.stdout


def test_integration_test_fails_when_the_canary_header_does_not_reach_the_canary(backend_url, api_key_file):
    # One backend, no edge: the header changes nothing, so the canary check must say so.
    model_version = json.loads(urllib.request.urlopen(backend_url + "/ready").read())["model_version"]
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_integration_test(backend_url, closed, api_key_file, "--canary-version", "20991231T000000Z-ca0a41")
    assert (
        f"FAIL  canary: expected 20991231T000000Z-ca0a41 for X-Experiment-Group: canary (stable {model_version}), "
        f"got 200 {model_version}"
    ) in result.stdout


def test_integration_test_gives_up_on_an_unreachable_backend():
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_script("test-integration.sh", "--backend-url", closed, "--timeout", "2")
    assert result.returncode == 1
    assert "backend /health did not answer 200 within 2s" in result.stdout


def test_load_test_counts_every_request(backend_url, api_key_file, tmp_path):
    summary_path = tmp_path / "load.json"
    result = run_script(
        "load-test.py",
        "--url",
        f"{backend_url}/api/v1/predict",
        "--duration",
        "2",
        "--rate",
        "25",
        "--workers",
        "4",
        "--api-key-file",
        str(api_key_file),
        "--json",
        str(summary_path),
    )
    assert result.returncode == 0, result.stdout
    summary = json.loads(summary_path.read_text())
    assert summary["requests"] == 50 and summary["failures"] == 0 and summary["outcomes"] == {"ok": 50}


def test_load_test_fails_when_requests_fail(backend_url):
    # No API key: every request is a 401, counted by status.
    result = run_script("load-test.py", "--url", f"{backend_url}/api/v1/predict", "--duration", "1", "--rate", "10")
    assert result.returncode == 1
    assert '"http_401": 10' in result.stdout
    assert "10 of 10 requests failed" in result.stdout


def test_load_test_refuses_a_remote_host():
    result = run_script("load-test.py", "--url", "http://192.0.2.1/api/v1/predict")
    assert result.returncode == 2
    assert "not a loopback address" in result.stdout


def test_dev_certificate_covers_localhost_and_is_kept(tmp_path):
    assert run_script("make-dev-cert.sh", "--dir", str(tmp_path), "--days", "2").returncode == 0
    text = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "tls.crt"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    again = run_script("make-dev-cert.sh", "--dir", str(tmp_path))
    assert "exists (use --force to replace it)" in again.stdout
