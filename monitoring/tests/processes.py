"""What the monitoring tests start (all on 127.0.0.1): the kit's processes, a Slack stand-in."""

from __future__ import annotations

import shutil
from pathlib import Path

from mnist_testkit.processes import Process
from mnist_testkit.processes import start_backend as start_kit_backend
from mnist_testkit.recording import RecordingServer, Reply
from mnist_testkit.waiting import free_port, http_ok, wait_until

MONITORING = Path(__file__).resolve().parents[1]
REPO_ROOT = MONITORING.parent

__all__ = [
    "MONITORING",
    "REPO_ROOT",
    "Process",
    "SlackStandIn",
    "free_port",
    "http_ok",
    "require",
    "start_backend",
    "wait_until",
]


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise AssertionError(f"{binary} is not installed: run scripts/install-system-deps.sh")
    return path


def start_backend(model_dir: Path, port: int, logs: Path) -> Process:
    """A real backend on ``port`` (a fixed one, so a restarted backend is the same scrape target),
    taking people's corrections into SQLite."""
    feedback = f"sqlite:///{logs / 'feedback.sqlite3'}"
    return start_kit_backend(model_dir, logs, port=port, ACCESS_LOG="false", FEEDBACK_DATABASE_URL=feedback)


class SlackStandIn(RecordingServer):
    """Records what Alertmanager posts to the Slack webhook (answers 200 "ok", as Slack does)."""

    def __init__(self) -> None:
        super().__init__(default=Reply(200, b"ok"))
        self.url = f"{self.url}/services/T000/B000/slack-stand-in"

    @property
    def messages(self) -> list[dict]:
        return [{"path": r.path, "payload": r.json()} for r in self.received("POST")]

    def titles(self) -> list[str]:
        return [a.get("title", "") for m in self.messages for a in m["payload"].get("attachments", [])]
