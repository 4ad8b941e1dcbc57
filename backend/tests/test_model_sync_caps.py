"""The model sync against a stand-in MLflow server (real HTTP on 127.0.0.1): it downloads only the
model contract's files, each within its cap, streamed to disk, and leaves nothing half-written
behind whatever fails."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_model_sync import registry
from mnist_model_sync.registry import RegistryClient
from mnist_model_sync.sync import Outcome, sync_once
from mnist_testkit.recording import RecordingServer

ROOT = "1/0123abcd/artifacts/model"
FILES_ROUTE = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def stand_in() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


def serve_version(server: RecordingServer, version_id: str, files: dict[str, bytes]) -> None:
    """What MLflow answers for the alias, the version's listing and each of its files."""
    version = {
        "name": "mnist-cnn",
        "version": "3",
        "source": f"mlflow-artifacts:/{ROOT}",
        "tags": [{"key": "model_version_id", "value": version_id}],
    }
    server.reply("/api/2.0/mlflow/registered-models/alias", body={"model_version": version})
    listing = [{"path": f"{ROOT}/{name}", "is_dir": False, "file_size": len(data)} for name, data in files.items()]
    server.reply(FILES_ROUTE, body={"files": listing})
    for name, data in files.items():
        server.reply(f"{FILES_ROUTE}/{ROOT}/{name}", body=data)


def real_files(model_dir: Path, version: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (model_dir / version).iterdir()}


def look(server: RecordingServer, models: Path) -> Outcome:
    return sync_once(RegistryClient(server.url), "mnist-cnn", "staging", models)


def test_the_contract_files_are_published(stand_in, tmp_path, model_dir, model_version):
    serve_version(stand_in, model_version, real_files(model_dir, model_version))
    outcome = look(stand_in, tmp_path / "models")
    assert outcome.result == "published", outcome.detail
    assert (tmp_path / "models" / "CURRENT").read_text().strip() == model_version
    assert sorted(p.name for p in (tmp_path / "models" / model_version).iterdir()) == sorted(registry.ALLOWED_FILES)


def test_the_mlflow_model_files_are_allowed_but_not_downloaded(stand_in, tmp_path, model_dir, model_version):
    """A version is an MLflow ONNX model too (MLmodel, environment files, input examples): the
    sync accepts such a version and fetches only what serving reads."""
    files = real_files(model_dir, model_version)
    assert files.keys() >= registry.MLFLOW_MODEL_FILES, "training publishes the MLflow model's files"
    serve_version(stand_in, model_version, files)
    outcome = look(stand_in, tmp_path / "models")
    assert outcome.result == "published", outcome.detail
    for name in registry.MLFLOW_MODEL_FILES:
        assert not stand_in.received(path=f"{FILES_ROUTE}/{ROOT}/{name}"), name
    assert (tmp_path / "models" / model_version / "MODEL_CARD.md").read_bytes() == files["MODEL_CARD.md"]


def test_a_file_outside_the_contract_refuses_the_version_without_downloading_anything(
    stand_in, tmp_path, model_dir, model_version
):
    files = {**real_files(model_dir, model_version), "payload.bin": b"\0" * 1024}
    serve_version(stand_in, model_version, files)
    outcome = look(stand_in, tmp_path / "models")
    assert outcome.result == "refused"
    assert "files outside the model contract: payload.bin" in outcome.detail
    assert not stand_in.received(path=f"{FILES_ROUTE}/{ROOT}/model.onnx")  # refused from the listing
    assert not (tmp_path / "models" / ".incoming").exists() and not (tmp_path / "models" / "CURRENT").exists()


def test_a_file_over_its_cap_is_cut_off_while_streaming(stand_in, tmp_path, model_dir, model_version, monkeypatch):
    """The listing may lie about sizes: the cap holds on the bytes that arrive, which go to disk
    in chunks, so memory does not grow with the file."""
    monkeypatch.setitem(registry.ALLOWED_FILES, "model.onnx", 1024 * 1024)
    files = {**real_files(model_dir, model_version), "model.onnx": b"\1" * (8 * 1024 * 1024)}
    serve_version(stand_in, model_version, files)
    tracemalloc.start()
    try:
        outcome = look(stand_in, tmp_path / "models")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.result == "refused" and "model.onnx is larger than 1048576 bytes" in outcome.detail
    assert peak < 2 * 1024 * 1024, f"the download held {peak / 1e6:.1f} MB in memory"
    assert not (tmp_path / "models" / ".incoming").exists()


def test_a_version_over_the_total_cap_is_refused(stand_in, tmp_path, model_dir, model_version, monkeypatch):
    monkeypatch.setattr(registry, "MAX_VERSION_BYTES", 100_000)
    serve_version(stand_in, model_version, real_files(model_dir, model_version))
    outcome = look(stand_in, tmp_path / "models")
    assert outcome.result == "refused" and "larger than 100000 bytes together" in outcome.detail
    assert not (tmp_path / "models" / ".incoming").exists()


def test_a_download_that_breaks_off_leaves_nothing_and_is_tried_again(stand_in, tmp_path, model_dir, model_version):
    files = real_files(model_dir, model_version)
    serve_version(stand_in, model_version, files)
    stand_in.reply(f"{FILES_ROUTE}/{ROOT}/model.onnx", drop=True)
    outcome = look(stand_in, tmp_path / "models")
    assert outcome.result == "unavailable"  # not refused: the next look downloads it again
    assert not (tmp_path / "models" / ".incoming").exists()
    stand_in.reply(f"{FILES_ROUTE}/{ROOT}/model.onnx", body=files["model.onnx"])
    assert look(stand_in, tmp_path / "models").result == "published"
