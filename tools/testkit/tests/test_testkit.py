"""The kit's own promises, against real sockets and processes."""

from __future__ import annotations

import socket
import sys
import time

import httpx
import pytest

from mnist_testkit.kept_alive import KeptAliveBackend
from mnist_testkit.processes import Process
from mnist_testkit.recording import RecordingServer, Reply
from mnist_testkit.waiting import free_port, http_ok, wait_until


def test_free_port_is_bindable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))


def test_wait_until_returns_the_condition_value_and_names_what_timed_out():
    assert wait_until(lambda: 42, timeout=1) == 42
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0\.3s waiting for the impossible"):
        wait_until(lambda: False, timeout=0.3, what="the impossible", interval=0.05)
    assert time.monotonic() - started < 2


def test_recording_server_records_and_answers_as_scripted():
    server = RecordingServer(default=Reply(200, {"served_by": "a"}))
    try:
        server.reply("/slow", 503, {"detail": "busy"}, {"Retry-After": "1"}, delay_s=0.2)
        assert httpx.get(server.url + "/anything").json() == {"served_by": "a"}
        started = time.monotonic()
        slow = httpx.post(server.url + "/slow?x=1", json={"k": 1})
        assert slow.status_code == 503 and slow.headers["retry-after"] == "1"
        assert time.monotonic() - started >= 0.2
        (posted,) = server.received("POST", "/slow")
        assert posted.json() == {"k": 1} and posted.headers["content-type"] == "application/json"
        server.reply("/drop", drop=True)
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(server.url + "/drop", json={})
    finally:
        server.close()


def test_process_waits_for_health_and_reports_an_early_exit(tmp_path):
    port = free_port()
    server = Process(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        tmp_path / "http.log",
        f"http://127.0.0.1:{port}/",
        cwd=tmp_path,
    )
    assert http_ok(f"http://127.0.0.1:{port}/")
    assert server.stop() is not None and not http_ok(f"http://127.0.0.1:{port}/")
    with pytest.raises(AssertionError, match="exited"):
        Process([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "exit.log", "http://127.0.0.1:9/")


def test_kept_alive_backend_tells_who_closed_an_idle_connection_first():
    backend = KeptAliveBackend(idle_limit_s=0.5)
    try:
        with httpx.Client(base_url=backend.url) as client:  # two requests, one connection
            assert client.post("/a", json={"x": 1}).json() == {}
            assert client.get("/b").status_code == 200
        wait_until(lambda: backend.closed_by_client, timeout=2)  # the client closed it
        with httpx.Client(base_url=backend.url) as client:
            client.get("/c")
            wait_until(lambda: backend.closed_here, timeout=2)  # it idled out here
    finally:
        backend.close()
    assert backend.connections == 2 and len(backend.closed_by_client) == 1
    assert backend.closed_by_client[0] < 0.5
