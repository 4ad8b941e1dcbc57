"""Training against real MLflow servers (SQLite and PostgreSQL backends): what a run logs,
what the registry holds, and that a registered version, downloaded back, is what the backend
serves. Each training run is the real project (`python -m mnist_training`) on a tiny budget."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import onnxruntime as ort
import pytest
from mlflow import MlflowClient

from mnist_testkit import postgres
from mnist_testkit.digits import load_digits
from mnist_testkit.processes import REPO_ROOT, Process, start_backend, start_mlflow_server
from mnist_testkit.waiting import free_port
from mnist_training.pipelines.track.nodes import fit_description
from tests.conftest import PROJECT_ROOT

TINY = "data.limit=500,train.epochs=2,train.architecture.channels=4,evaluate.enforce_floors=false"
MODEL_NAME = "mnist-cnn"


def mlflow_image_entrypoint():
    """docker/mlflow/serve.py, the MLflow image's entry point, which writes the auth app's config."""
    spec = importlib.util.spec_from_file_location("mlflow_serve", REPO_ROOT / "docker" / "mlflow" / "serve.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(
    models_dir: Path, tracking_uri: str | None, *extra: str, params: str = TINY, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.run(
        [sys.executable, "-m", "mnist_training", "--params", f"export.models_dir={models_dir},{params}", *extra],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("mlflow-sqlite")
    server = start_mlflow_server(f"sqlite:///{directory / 'mlflow.db'}", directory)
    yield str(server.url)
    server.stop()


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A real PostgreSQL (Debian's server binaries) in a temporary data directory, on 127.0.0.1."""
    if not postgres.installed():
        pytest.skip(f"PostgreSQL is not installed ({postgres.POSTGRES_BIN}): scripts/install-system-deps.sh")
    with postgres.running_postgres() as server:
        yield server.uri()


@pytest.fixture(scope="module")
def postgres_server(postgres_uri, tmp_path_factory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("mlflow-postgres")
    server = start_mlflow_server(postgres_uri, directory)
    yield str(server.url)
    server.stop()


def registered_versions(tracking_uri: str) -> list:
    client = MlflowClient(tracking_uri)
    return sorted(client.search_model_versions(f"name='{MODEL_NAME}'"), key=lambda v: int(v.version))


def download(tracking_uri: str, version: str, target: Path) -> Path:
    mlflow.set_tracking_uri(tracking_uri)
    return Path(
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL_NAME}/{version}", dst_path=str(target))
    )


def published_version(models_dir: Path) -> str:
    return (models_dir / "CURRENT").read_text().strip()


def serve_and_predict(version_dir: Path, tmp_path: Path) -> tuple[dict, int]:
    """Serve the downloaded folder with the real backend; return its answer for a real 7 and
    the digit ONNX Runtime reads from the same folder's model.onnx."""
    # Into the registry's layout: models/<version id>/ and CURRENT naming it.
    metadata = json.loads((version_dir / "metadata.json").read_text())
    models = tmp_path / "served"
    shutil.copytree(version_dir, models / metadata["version"])
    (models / "CURRENT").write_text(metadata["version"] + "\n")
    pixels = np.asarray(load_digits()[7], dtype=np.float32).reshape(-1) / 255.0
    normalized = ((pixels - metadata["input"]["mean"]) / metadata["input"]["std"]).reshape(1, 1, 28, 28)
    session = ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = int(session.run(None, {"image": normalized.astype(np.float32)})[0].argmax())
    backend = start_backend(models, tmp_path, ENVIRONMENT="dev")
    try:
        body = {"image": pixels.reshape(28, 28).tolist()}
        answer = httpx.post(f"{backend.url}/api/v1/predict", json=body, timeout=30).json()
    finally:
        backend.stop()
    return answer, expected


def check_registered_run(tracking_uri: str, models_dir: Path, registered, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri)
    version = published_version(models_dir)
    metadata = json.loads((models_dir / version / "metadata.json").read_text())
    assert registered.tags["model_version_id"] == version
    assert registered.tags["onnx_sha256"] == metadata["onnx_sha256"]
    assert registered.tags["test_accuracy"] == f"{metadata['metrics']['test_accuracy']:.6f}"
    assert registered.tags["data_sha256"] == metadata["data"]["sha256"]
    assert float(registered.tags["parity_max_abs_diff"]) <= 1e-4
    assert {"git_sha", "data_source"} <= registered.tags.keys()

    run = client.get_run(registered.run_id)
    check_one_named_run_with_its_data(client, run, version, metadata)
    assert run.data.params["train.epochs"] == "2" and run.data.params["train.architecture.channels"] == "4"
    assert run.data.params["data.limit"] == "500" and run.data.params["registry.model_name"] == MODEL_NAME
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    assert run.data.metrics["test_accuracy"] == pytest.approx(metadata["metrics"]["test_accuracy"])
    assert {f"test_accuracy_digit_{d}" for d in range(10)} <= run.data.metrics.keys()
    for variant, accuracy in metadata["metrics"]["robustness"].items():
        assert run.data.metrics[f"robustness_{variant}"] == pytest.approx(accuracy)
    assert run.data.metrics["onnx_parity_max_abs_diff"] == pytest.approx(metadata["parity_max_abs_diff"])
    assert run.data.tags["mnist.model_version_id"] == version

    # The registered artifacts are the published folder, byte for byte: the serving contract.
    downloaded = download(tracking_uri, registered.version, tmp_path / "download")
    published = models_dir / version
    # (MLflow's client writes registered_model_meta beside a downloaded MLflow model.)
    assert sorted(p.name for p in downloaded.iterdir() if p.name != "registered_model_meta") == sorted(
        p.name for p in published.iterdir()
    )
    for path in published.iterdir():
        assert (downloaded / path.name).read_bytes() == path.read_bytes(), path.name
    answer, expected = serve_and_predict(downloaded, tmp_path)
    assert answer["model_version"] == version
    assert answer["digit"] == expected and sum(answer["probabilities"]) == pytest.approx(1, abs=1e-3)
    # Its description is the version's model card, every section there.
    assert registered.description == fit_description((published / "MODEL_CARD.md").read_text())
    for section in CARD_SECTIONS:
        assert f"\n## {section}\n" in registered.description, section


CARD_SECTIONS = ("Intended use", "Data", "Metrics", "Preprocessing contract", "Known limits", "Training")


def check_one_named_run_with_its_data(client: MlflowClient, run, version: str, metadata: dict) -> None:
    """One run for the training (no stray or nested one), named after its version, in an experiment
    that MLflow's UI opens on its runs, with plain parameter values and the data set as its inputs."""
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id], f"attributes.run_name = 'train {version}'")
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    started_with_it = client.search_runs(
        [experiment.experiment_id], f"attributes.start_time >= {run.info.start_time - 5000}"
    )
    assert [r.info.run_id for r in started_with_it if r.info.start_time <= run.info.end_time] == [run.info.run_id]
    assert "mlflow.parentRunId" not in run.data.tags
    assert run.info.run_name == f"train {version}" and run.info.status == "FINISHED"
    assert not [key for key, value in run.data.params.items() if "=" in value or "Params(" in value], "repr values"
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    source = metadata["data"]["source"]
    assert sorted(inputs) == sorted(f"mnist-{source}/{split}" for split in ("train", "validation", "test"))
    for split, count in (("train", "n_train"), ("validation", "n_validation"), ("test", "n_test")):
        dataset_input = inputs[f"mnist-{source}/{split}"]
        assert dataset_input.dataset.digest == metadata["data"]["sha256"][:36]
        tags = {tag.key: tag.value for tag in dataset_input.tags}
        assert tags["mlflow.data.context"] == split and tags["sha256"] == metadata["data"]["sha256"]
        assert json.loads(dataset_input.dataset.profile)["features_shape"] == [metadata["data"][count], 28, 28]


def test_runs_against_a_server_log_everything_and_register_each_published_version(sqlite_server, tmp_path):
    models_dir = tmp_path / "models"
    first = train(models_dir, sqlite_server)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    [registered] = registered_versions(sqlite_server)
    assert registered.version == "1"
    check_registered_run(sqlite_server, models_dir, registered, tmp_path / "first")

    second = train(models_dir, sqlite_server)
    assert second.returncode == 0, second.stderr[-3000:]
    versions = registered_versions(sqlite_server)
    assert [v.version for v in versions] == ["1", "2"]
    assert versions[1].tags["model_version_id"] == published_version(models_dir) != registered.tags["model_version_id"]


def test_a_run_that_fails_onnx_parity_registers_nothing(sqlite_server, tmp_path):
    before = len(registered_versions(sqlite_server))
    # A tolerance nothing can meet: the parity check raises, publication and registration never run.
    result = train(tmp_path / "models", sqlite_server, params=f"{TINY},export.parity_tolerance=1e-30")
    assert result.returncode != 0
    assert "ONNX export differs from PyTorch" in result.stdout + result.stderr
    assert len(registered_versions(sqlite_server)) == before
    assert not (tmp_path / "models" / "CURRENT").exists()
    client = MlflowClient(sqlite_server)
    experiment_id = client.get_experiment_by_name(MODEL_NAME).experiment_id
    failed = client.search_runs([experiment_id], order_by=["start_time DESC"], max_results=1)[0]
    assert failed.info.status == "FAILED"
    assert failed.info.run_name.startswith("train ")  # the version it would have published
    assert failed.data.tags["mnist.failure_reason"].startswith("OnnxParityError: ONNX export differs from PyTorch")
    assert client.list_artifacts(failed.info.run_id, "model") == []


def test_the_registry_works_the_same_on_postgresql(postgres_server, tmp_path):
    models_dir = tmp_path / "models"
    result = train(models_dir, postgres_server)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [registered] = registered_versions(postgres_server)
    check_registered_run(postgres_server, models_dir, registered, tmp_path)
    check_mlflow_loads_and_serves_it(postgres_server, models_dir, registered, tmp_path / "mlflow")


def check_mlflow_loads_and_serves_it(tracking_uri: str, models_dir: Path, registered, tmp_path: Path) -> None:
    """The registered version is an MLflow ONNX model: its signature, ``mlflow.pyfunc`` through an
    alias, and ``mlflow models serve``, each answering what the backend answers for the same pixels."""
    client = MlflowClient(tracking_uri)
    client.set_registered_model_alias(MODEL_NAME, "staging", registered.version)
    mlflow.set_tracking_uri(tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}/{registered.version}")
    assert info.signature.inputs.to_dict() == [
        {"name": "image", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": (-1, 1, 28, 28)}}
    ]
    assert info.signature.outputs.to_dict() == [
        {"name": "logits", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": (-1, 10)}}
    ]
    assert info.saved_input_example_info["type"] == "ndarray"

    version = published_version(models_dir)
    metadata = json.loads((models_dir / version / "metadata.json").read_text())
    pixels = np.asarray(load_digits()[7], dtype=np.float32).reshape(-1) / 255.0
    image = ((pixels - metadata["input"]["mean"]) / metadata["input"]["std"]).astype(np.float32).reshape(1, 1, 28, 28)
    answer, _ = serve_and_predict(models_dir / version, tmp_path / "backend")

    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@staging")
    logits = np.asarray(loaded.predict({"image": image})["logits"])
    assert softmax(logits)[0] == pytest.approx(answer["probabilities"], abs=1e-5)

    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    model_uri = f"models:/{MODEL_NAME}/{registered.version}"
    serve = ["models", "serve", "-m", model_uri, "--env-manager", "local", "--workers", "1"]
    server = Process(
        [sys.executable, "-m", "mlflow", *serve, "--host", "127.0.0.1", "--port", str(port)],
        tmp_path / "mlflow-models-serve.log",
        health_url=f"http://127.0.0.1:{port}/ping",
        # MLflow starts uvicorn by name: the environment's bin/ first, as in an activated virtualenv.
        env={
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        timeout=120,
    )
    try:
        reply = httpx.post(
            f"http://127.0.0.1:{port}/invocations", json={"inputs": {"image": image.tolist()}}, timeout=30
        )
        assert reply.status_code == 200, reply.text
        served = np.asarray(reply.json()["predictions"]["logits"])
        assert softmax(served)[0] == pytest.approx(answer["probabilities"], abs=1e-5)
    finally:
        server.stop()


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_an_unreachable_tracking_server_fails_fast_with_one_sentence(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = train(tmp_path / "models", uri)
    assert result.returncode == 1
    assert f"error: the MLflow tracking server {uri} cannot be used" in result.stderr
    assert "TRACKING=off" in result.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


ACCOUNTS = {  # role: (user, password) as docker/mlflow/serve.py creates them from its secrets
    "TRAINING": ("training", "a-long-training-password"),  # pragma: allowlist secret
    "PROMOTER": ("promoter", "a-long-promoter-password"),  # pragma: allowlist secret
    "SYNC": ("model-sync", "a-long-sync-password"),  # pragma: allowlist secret
}


def as_user(role: str) -> dict[str, str]:
    user, password = ACCOUNTS[role]
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


def registry_call(server_url: str, role: str, method: str, route: str, body: dict) -> httpx.Response:
    user, password = ACCOUNTS[role]
    return httpx.request(method, f"{server_url}/api/2.0/mlflow/{route}", json=body, auth=(user, password), timeout=30)


def test_a_server_with_basic_auth_is_used_with_credentials_and_refused_fast_without(tmp_path):
    """Staging's and production's server (the image's basic-auth setup, its accounts per role):
    no user, or a wrong password, fails before any training with a sentence; the training account
    registers the version but moves no alias, the sync's only reads, the promoter's promotes, and
    every alias move is on the server's log with its user."""
    password = "a-long-admin-password-for-tests"  # pragma: allowlist secret
    image = mlflow_image_entrypoint()
    with postgres.running_postgres(password="db-password-for-tests") as database:  # pragma: allowlist secret
        # The image's own configuration (credential cache, accounts), with its users in SQLite here.
        auth_uri = f"sqlite:///{tmp_path / 'auth.db'}"
        auth_config = image.write_auth_config(auth_uri, "admin", 60)
        image.ensure_accounts(auth_uri, database.uri(), ACCOUNTS, MODEL_NAME)
        server = start_mlflow_server(
            database.uri(),
            tmp_path,
            "--app-name",
            "basic-auth",
            MLFLOW_AUTH_CONFIG_PATH=str(auth_config),
            MLFLOW_AUTH_ADMIN_PASSWORD=password,
            MLFLOW_FLASK_SERVER_SECRET_KEY="secret-key-for-tests",  # pragma: allowlist secret
            MLFLOW_PROMOTERS="promoter",
            MLFLOW_READ_ONLY_USERS="model-sync",
            PYTHONPATH=str(REPO_ROOT / "docker" / "mlflow"),
        )
        try:
            for credentials, expected in (
                ({}, "wants a user"),
                (
                    {
                        "MLFLOW_TRACKING_USERNAME": "training",
                        "MLFLOW_TRACKING_PASSWORD": "wrong",  # pragma: allowlist secret
                    },
                    "refused the credentials given",
                ),
            ):
                started = time.monotonic()
                result = train(tmp_path / "refused", server.url, env=credentials)
                assert result.returncode == 1, result.stderr[-2000:]
                assert f"{server.url} cannot be used (it {expected}, HTTP 401" in result.stderr
                assert time.monotonic() - started < 60
            assert not (tmp_path / "refused").exists()

            result = train(tmp_path / "models", server.url, env=as_user("TRAINING"))
            assert result.returncode == 0, result.stderr[-3000:]
            os.environ.update(as_user("SYNC"))
            try:
                [registered] = registered_versions(server.url)
            finally:
                for name in as_user("SYNC"):
                    os.environ.pop(name)
            assert registered.tags["model_version_id"] == published_version(tmp_path / "models")

            # A registry write is not a deploy: the accounts that may register, or read, move no alias.
            alias = {"name": MODEL_NAME, "alias": "production", "version": registered.version}
            for role in ("TRAINING", "SYNC"):
                reply = registry_call(server.url, role, "POST", "registered-models/alias", alias)
                assert reply.status_code == 403, reply.text
                assert "only promoters may" in reply.json()["message"] or "may only read" in reply.json()["message"]
            history = {"name": MODEL_NAME, "key": "alias_history.production", "value": "[]"}
            reply = registry_call(server.url, "TRAINING", "POST", "registered-models/set-tag", history)
            assert reply.status_code == 403 and "promotion record tag" in reply.json()["message"], reply.text
            reply = registry_call(server.url, "TRAINING", "DELETE", "model-versions/delete", alias)
            assert reply.status_code == 403, reply.text
            reply = registry_call(
                server.url, "SYNC", "POST", "model-versions/set-tag", {**alias, "key": "k", "value": "v"}
            )
            assert reply.status_code == 403 and "may only read" in reply.json()["message"], reply.text
            # An ordinary tag is the training account's to write.
            reply = registry_call(
                server.url, "TRAINING", "POST", "model-versions/set-tag", {**alias, "key": "k", "value": "v"}
            )
            assert reply.status_code == 200, reply.text

            promoted = subprocess.run(
                [str(REPO_ROOT / "scripts/promote-model.sh"), registered.version, "--to", "production"],
                env={**os.environ, **as_user("PROMOTER"), "MLFLOW_TRACKING_URI": server.url, "PY": sys.executable}
                | {"PROMOTION_MIN_ACCURACY": "0", "PROMOTION_MAX_ACCURACY_DROP": "1"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert promoted.returncode == 0, promoted.stderr[-2000:]
            audit = [
                json.loads(line.split("registry-audit: ", 1)[1])
                for line in server.log_path.read_text().splitlines()
                if "registry-audit: " in line
            ]
            assert [(line["event"], line["user"]) for line in audit if line["event"] != "refused"] == [
                ("version registered", "training"),
                ("alias set", "promoter"),
            ]
            assert {line["user"] for line in audit if line["event"] == "refused"} == {"training", "model-sync"}
            [moved] = [line for line in audit if line["event"] == "alias set"]
            assert (moved["model"], moved["alias"], moved["version"]) == (MODEL_NAME, "production", registered.version)
            # Deleting a version is the promoter's too (MLflow asks MANAGE for it: granted at start).
            reply = registry_call(server.url, "PROMOTER", "DELETE", "model-versions/delete", alias)
            assert reply.status_code == 200, reply.text
        finally:
            server.stop()
            shutil.rmtree(auth_config.parent)


def test_tracking_off_publishes_and_registers_nothing(sqlite_server, tmp_path):
    client = MlflowClient(sqlite_server)
    experiment = client.get_experiment_by_name(MODEL_NAME)
    runs_before = len(client.search_runs([experiment.experiment_id])) if experiment else 0
    versions_before = len(registered_versions(sqlite_server))
    result = train(tmp_path / "models", sqlite_server, "--env", "untracked")
    assert result.returncode == 0, result.stderr[-3000:]
    assert published_version(tmp_path / "models")
    assert "Tracking is off" in result.stdout + result.stderr
    experiment = client.get_experiment_by_name(MODEL_NAME)
    assert (len(client.search_runs([experiment.experiment_id])) if experiment else 0) == runs_before
    assert len(registered_versions(sqlite_server)) == versions_before


def test_without_a_tracking_uri_runs_go_to_the_embedded_store(tmp_path):
    result = train(tmp_path / "models", None)
    assert result.returncode == 0, result.stderr[-3000:]
    store = f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
    version = published_version(tmp_path / "models")
    runs = MlflowClient(store).search_runs(
        [MlflowClient(store).get_experiment_by_name(MODEL_NAME).experiment_id],
        filter_string=f"tags.`mnist.model_version_id` = '{version}'",
    )
    assert len(runs) == 1
    assert any(v.tags["model_version_id"] == version for v in registered_versions(store))
