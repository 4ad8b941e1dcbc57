"""The model sync as the sidecar runs it: a real process, stopped the way Kubernetes and Docker
stop it (SIGTERM), while it waits between looks at a registry that does not answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from mnist_testkit.waiting import free_port


def test_sigterm_stops_the_sidecar_at_once_and_cleanly(tmp_path):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "MODEL_DIR": str(tmp_path / "models"),
        "SYNC_INTERVAL_S": "60",
        "SYNC_METRICS_PORT": "0",
        "MODEL_ALIAS": "staging",
    }
    process = subprocess.Popen([sys.executable, "-m", "mnist_model_sync"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while "following" not in (line := process.stderr.readline()):  # type: ignore[union-attr]
            assert line and time.monotonic() < deadline, "the sidecar did not start"
        time.sleep(1)  # now waiting out its 60 s interval
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 3
        assert "stopping (SIGTERM)" in process.stderr.read()  # type: ignore[union-attr]
    finally:
        process.kill()
