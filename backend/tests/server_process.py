"""A real ``python -m mnist_backend`` process on 127.0.0.1, as users and containers run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class ServerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mnist_backend"],
            env={**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(self.port)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def answers(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log_records(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        """SIGTERM, as Docker sends it: uvicorn drains, shuts down, then exits by that signal."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=20)
        self._log.close()
        assert code in (0, -signal.SIGTERM), f"exit code {code}: {self.log_path.read_text()[-2000:]}"
        assert "Application shutdown complete" in self.log_path.read_text()


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process now (VmRSS) or at its peak (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM afresh from the current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def server_starter(tmp_path: Path) -> tuple[Callable[..., ServerProcess], list[ServerProcess]]:
    servers = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(env, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        wait_until(lambda: server.answers() or server.process.poll() is not None, what="the server to answer")
        if server.process.poll() is not None:
            raise AssertionError(f"server exited: {server.log_path.read_text()}")
        return server

    return start, servers
