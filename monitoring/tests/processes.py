"""Start and stop the real programs the monitoring tests use (all on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

MONITORING = Path(__file__).resolve().parents[1]
REPO_ROOT = MONITORING.parent


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise AssertionError(f"{binary} is not installed: run scripts/install-system-deps.sh")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float = 60, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Process:
    def __init__(self, command: list[str], log_path: Path, health_url: str | None = None, **env: str) -> None:
        self.command = command
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        if health_url:
            wait_until(lambda: http_ok(health_url) or self.process.poll() is not None, what=f"{command[0]} to answer")
            if self.process.poll() is not None:
                raise AssertionError(f"{command[0]} exited:\n{log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_backend(model_dir: Path, port: int, logs: Path) -> Process:
    return Process(
        [sys.executable, "-m", "mnist_backend"],
        logs / f"backend-{time.monotonic_ns()}.log",
        f"http://127.0.0.1:{port}/ready",
        MODEL_DIR=str(model_dir),
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_FORMAT="text",
        ACCESS_LOG="false",
    )


class SlackStandIn:
    """A local HTTP server that records what Alertmanager posts to the Slack webhook."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.messages.append({"path": self.path, "payload": json.loads(body)})
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/slack-stand-in"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def titles(self) -> list[str]:
        return [a.get("title", "") for m in self.messages for a in m["payload"].get("attachments", [])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
