"""A real ``python -m mnist_backend`` process on 127.0.0.1, as users and containers run it."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from mnist_testkit.processes import Process, start_backend
from mnist_testkit.waiting import http_ok


class ServerProcess:
    """The kit's backend process, plus what these tests check: JSON log records and a clean stop."""

    def __init__(self, backend: Process) -> None:
        self.backend = backend
        self.process = backend.process
        self.url = backend.url
        self.port = int(self.url.rsplit(":", 1)[1])
        self.log_path = backend.log_path

    def answers(self) -> bool:
        return http_ok(self.url + "/health")

    def log_records(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        """SIGTERM, as Docker sends it: uvicorn drains, shuts down, then exits by that signal."""
        code = self.backend.stop()
        assert code in (0, -signal.SIGTERM), f"exit code {code}: {self.log_path.read_text()[-2000:]}"
        assert "Application shutdown complete" in self.log_path.read_text()


def server_starter(tmp_path: Path) -> tuple[Callable[..., ServerProcess], list[ServerProcess]]:
    """``start(MODEL_DIR=..., **env)`` starts a real server; every one started is in the list."""
    servers: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        model_dir = Path(env.pop("MODEL_DIR"))
        server = ServerProcess(start_backend(model_dir, tmp_path, **env))
        servers.append(server)
        return server

    return start, servers
