"""What the frontend tests start: the page and a real backend (the kit's), and a scripted stand-in."""

from __future__ import annotations

from pathlib import Path

from mnist_testkit.recording import RecordingServer

FRONTEND_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = FRONTEND_DIR.parent
APP_PATH = FRONTEND_DIR / "src" / "mnist_frontend" / "app.py"


class ScriptedBackend(RecordingServer):
    """Stands in for the backend's failure modes (401, 429, 503, 422, 500, slow) on cue."""

    def ready_with_model(self) -> None:
        self.reply("/ready", 200, {"status": "ready", "model_version": "20260101T000000Z-abcdef"})
        self.reply(
            "/api/v1/model/info",
            200,
            {"version": "20260101T000000Z-abcdef", "metrics": {"test_accuracy": 0.9912}, "data": {"n_test": 1000}},
        )
