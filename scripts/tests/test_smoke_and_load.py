"""test-integration.sh and load-test.py against a real backend process."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import urllib.request
from collections import Counter
from pathlib import Path

from mnist_testkit.processes import Process
from mnist_testkit.recording import RecordingServer, Reply
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


class ClosingServer:
    """Answers the first request of every connection and closes the connection on the next one
    without a word (what an edge does with a kept-alive connection as it reloads), or on every
    request with ``always``."""

    def __init__(self, always: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/api/v1/predict"
        self.always = always
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(connection,), daemon=True).start()

    def handle(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as reader:
            for number in range(2):
                headers = b""
                while not headers.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    headers += line
                length = next(
                    int(h.split(b":")[1]) for h in headers.split(b"\r\n") if h.lower().startswith(b"content-length")
                )
                reader.read(length)
                if number == 1 or self.always:
                    return  # closed, nothing answered
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    def close(self) -> None:
        self.listener.close()


def load(url: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    args = ["--url", url, "--duration", "1", "--rate", "20", "--workers", "2", "--json", str(tmp_path / "s.json")]
    result = run_script("load-test.py", *args)
    return result, json.loads((tmp_path / "s.json").read_text())


def test_load_test_sends_again_once_when_a_kept_alive_connection_closes_unanswered(tmp_path):
    server = ClosingServer()
    try:
        result, summary = load(server.url, tmp_path)
    finally:
        server.close()
    assert result.returncode == 0, result.stdout
    assert summary["failures"] == 0 and summary["requests"] == 20
    # Every request after a worker's first went out on a reused connection and was sent again.
    assert summary["retried_on_closed_connection"] == 18


def test_load_test_counts_a_connection_closed_on_a_first_request_as_a_failure(tmp_path):
    server = ClosingServer(always=True)
    try:
        result, summary = load(server.url, tmp_path)
    finally:
        server.close()
    assert result.returncode == 1
    assert summary["failures"] == 20 and summary["retried_on_closed_connection"] == 0
    assert set(summary["outcomes"]) == {"error_RemoteDisconnected"}


def start_prometheus(tmp_path: Path, targets: list[str]) -> Process:
    """A real Prometheus scraping `targets` every second as job mnist-backend."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: mnist-backend\n    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
    )
    return Process(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
        health_url=f"http://127.0.0.1:{port}/-/ready",
        url=f"http://127.0.0.1:{port}",
    )


def test_integration_test_waits_until_prometheus_has_scraped_every_backend_target(backend_url, api_key_file, tmp_path):
    backend = backend_url.removeprefix("http://")
    prometheus = start_prometheus(tmp_path, [backend])
    try:
        result = run_integration_test(
            backend_url, "http://127.0.0.1:9", api_key_file, "--prometheus-url", prometheus.url
        )
    finally:
        prometheus.stop()
    assert "ok    Prometheus scrapes every backend (1/1 targets up)" in result.stdout, result.stdout


def test_integration_test_names_a_backend_target_prometheus_cannot_scrape(backend_url, api_key_file, tmp_path):
    backend = backend_url.removeprefix("http://")
    prometheus = start_prometheus(tmp_path, [backend, f"127.0.0.1:{free_port()}"])
    try:
        result = run_integration_test(
            backend_url, "http://127.0.0.1:9", api_key_file, "--prometheus-url", prometheus.url, "--timeout", "1"
        )
    finally:
        prometheus.stop()
    assert result.returncode == 1
    assert "has not seen every backend target up (up/targets: 1/2)" in result.stdout, result.stdout


def test_load_test_clients_take_turns_so_the_edge_can_split_them(tmp_path):
    server = RecordingServer(default=Reply(200, {}))
    try:
        url = f"http://127.0.0.1:{server.port}/api/v1/predict"
        args = ["--url", url, "--duration", "1", "--rate", "20", "--workers", "2", "--clients", "4"]
        result = run_script("load-test.py", *args)
        clients = [request.headers.get("x-client-id") for request in server.received("POST")]
    finally:
        server.close()
    assert result.returncode == 0, result.stdout
    assert len(clients) == 20 and Counter(clients) == {f"load-test-{n}": 5 for n in range(4)}
    assert run_script("load-test.py", "--url", url, "--clients", "-1").returncode == 2
