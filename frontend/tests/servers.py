"""Real servers for the frontend tests: the backend, a scripted stand-in, the page itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

FRONTEND_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = FRONTEND_DIR.parent
APP_PATH = FRONTEND_DIR / "src" / "mnist_frontend" / "app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


class Process:
    """A child process with its output in a log file, stopped with SIGTERM."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path, cwd: Path, health_url: str) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until(lambda: answers(health_url) or self.process.poll() is not None, what=f"{command[2]} to answer")
        if self.process.poll() is not None:
            raise AssertionError(f"{command} exited:\n{log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


def start_backend(model_dir: Path, log_dir: Path, **env: str) -> tuple[Process, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = Process(
        [sys.executable, "-m", "mnist_backend"],
        {"MODEL_DIR": str(model_dir), "HOST": "127.0.0.1", "PORT": str(port), "LOG_FORMAT": "text", **env},
        log_dir / f"backend-{port}.log",
        REPO_ROOT,
        url + "/health",
    )
    return process, url


def start_frontend(backend_url: str, log_dir: Path, **env: str) -> tuple[Process, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The image's own entry point (`python -m mnist_frontend` execs `streamlit run` on app.py).
    process = Process(
        [
            sys.executable,
            "-m",
            "mnist_frontend",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        {"BACKEND_URL": backend_url, "CONNECT_RETRIES": "0", "REQUEST_TIMEOUT_S": "3", **env},
        log_dir / f"frontend-{port}.log",
        FRONTEND_DIR,
        url + "/_stcore/health",
    )
    return process, url


class ScriptedBackend:
    """A real HTTP server that answers each path with a status and body the test chooses.

    Stands in for the backend's failure modes (401, 429, 503, 422, 500, slow) that a real
    backend would need elaborate setup to produce on cue.
    """

    def __init__(self) -> None:
        self.replies: dict[str, tuple[int, dict, dict[str, str], float]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path, dict(self.headers)))
                status, body, headers, delay = outer.replies.get(self.path, (404, {"detail": "Not Found"}, {}, 0.0))
                time.sleep(delay)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _reply  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def reply(
        self, path: str, status: int, body: dict, headers: dict[str, str] | None = None, delay: float = 0
    ) -> None:
        self.replies[path] = (status, body, headers or {}, delay)

    def ready_with_model(self) -> None:
        self.reply("/ready", 200, {"status": "ready", "model_version": "20260101T000000Z-abcdef"})
        self.reply(
            "/api/v1/model/info",
            200,
            {"version": "20260101T000000Z-abcdef", "metrics": {"test_accuracy": 0.9912}, "data": {"n_test": 1000}},
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
