"""Real processes for tests: the backend and the page as users start them, or any program."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mnist_testkit.waiting import free_port, http_ok, wait_until

REPO_ROOT = Path(__file__).resolve().parents[4]


class Process:
    """A child process with its output in a log file; waits for ``health_url`` when given."""

    def __init__(
        self,
        command: list[str],
        log_path: Path,
        health_url: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
        url: str | None = None,
    ) -> None:
        self.command, self.log_path, self.url = command, log_path, url
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        if health_url:
            wait_until(
                lambda: http_ok(health_url, lambda status: status < 500) or self.process.poll() is not None,
                timeout,
                f"{Path(command[0]).name} to answer at {health_url}",
            )
            if self.process.poll() is not None:
                raise AssertionError(f"{command} exited:\n{log_path.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int | None:
        """SIGTERM (as Docker sends it), then SIGKILL after 20 s; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def start_backend(model_dir: Path, log_dir: Path, port: int | None = None, **env: str) -> Process:
    """``python -m mnist_backend`` serving ``model_dir`` (on a free port unless given); ``.url`` is its address."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    return Process(
        [sys.executable, "-m", "mnist_backend"],
        log_dir / f"backend-{port}.log",
        url + "/health",
        {"MODEL_DIR": str(model_dir), "HOST": "127.0.0.1", "PORT": str(port), "LOG_FORMAT": "text", **env},
        cwd=REPO_ROOT,
        url=url,
    )


def start_frontend(backend_url: str, log_dir: Path, **env: str) -> Process:
    """The drawing page as its image starts it (``python -m mnist_frontend``), on a free port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return Process(
        [sys.executable, "-m", "mnist_frontend", "--server.port", str(port), "--server.address", "127.0.0.1"],
        log_dir / f"frontend-{port}.log",
        url + "/_stcore/health",
        {"BACKEND_URL": backend_url, "CONNECT_RETRIES": "0", "REQUEST_TIMEOUT_S": "3", **env},
        cwd=REPO_ROOT / "frontend",
        url=url,
    )


def start_mlflow_server(backend_store_uri: str, directory: Path, *options: str, **env: str) -> Process:
    """``mlflow server`` (of the running Python) as the Compose service runs it: proxied artifacts
    in ``directory/artifacts``, on a free port of 127.0.0.1; ``.url`` is its address."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri]
    command += ["--artifacts-destination", str(directory / "artifacts"), "--serve-artifacts"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", *options]
    return Process(
        command,
        directory / f"mlflow-server-{port}.log",
        health_url=f"http://127.0.0.1:{port}/health",
        # As in the image (Dockerfile.mlflow): no job execution, whose consumers are a dozen
        # extra processes importing MLflow while the server starts.
        env={"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env},
        timeout=120,
        url=f"http://127.0.0.1:{port}",
    )


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process now (VmRSS) or at its peak (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM afresh from the current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
