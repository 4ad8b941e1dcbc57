"""Helpers for the deployment-script tests: run a script, a real backend, a local HTTP receiver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run scripts/<name> from the repository root; stdout and stderr together in ``.stdout``."""
    command = [sys.executable, str(SCRIPTS / name)] if name.endswith(".py") else [str(SCRIPTS / name)]
    return subprocess.run(
        [*command, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


COMPOSE_VERSIONS = ("v1", "v2")


def compose_answers(version: str) -> bool:
    """Whether the scripts find Compose `version` (v2 may live in DOCKER_CONFIG's plugins)."""
    return run_script("compose.sh", "dev", "version", env={"COMPOSE_CLI": version}).returncode == 0


def compose_available() -> bool:
    return any(compose_answers(version) for version in COMPOSE_VERSIONS)


class Receiver:
    """A local stand-in for Slack's incoming webhook: records every POST body."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(
                    {"path": self.path, "content_type": self.headers["Content-Type"], "json": json.loads(body)}
                )
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXX"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def backend_url(tmp_path_factory) -> Iterator[str]:
    """A real backend process (uvicorn) serving the default model, with one API key."""
    models = Path(os.environ.get("MODEL_DIR", REPO_ROOT / "models"))
    if not (models / "CURRENT").exists():
        raise AssertionError(f"no model in {models}: run 'make model' first")
    keys = tmp_path_factory.mktemp("secrets") / "api_keys"
    keys.write_text("# test key\nscripts-test-key\n")
    port = free_port()
    log = (tmp_path_factory.mktemp("logs") / "backend.log").open("w")
    env = {
        **os.environ,
        "MODEL_DIR": str(models),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ENVIRONMENT": "staging",
        "API_KEYS_FILE": str(keys),
        # The tests fail authentication on purpose, many times, from this one address.
        "AUTH_FAILURE_LIMIT": "1000/minute",
        "LOG_FORMAT": "text",
    }
    process = subprocess.Popen([sys.executable, "-m", "mnist_backend"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the backend did not start; see {log.name}") from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture(scope="session")
def api_key_file(backend_url, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("client") / "api_keys"
    path.write_text("scripts-test-key\n")
    return path
