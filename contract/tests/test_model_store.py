"""The model store's writer: versions appear whole and immutable, CURRENT moves atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from mnist_contract.metadata import MetadataError, check_metadata
from mnist_contract.model_store import (
    STAGING_PREFIX,
    list_versions,
    main,
    place_version,
    publish_version,
    read_current_version,
    set_current_version,
)
from mnist_contract.version_id import new_version_id
from tests.examples import valid_metadata


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
    with pytest.raises(MetadataError, match=r"input.*mean"):
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
        check_metadata(valid_metadata(version))


def test_current_can_be_moved_back_to_an_older_version(tmp_path):
    old, new = new_version_id(), new_version_id()
    for version in (old, new):
        publish_version(tmp_path, version, valid_metadata(version), {})
    assert read_current_version(tmp_path) == new
    set_current_version(tmp_path, old)
    assert read_current_version(tmp_path) == old
    with pytest.raises(FileNotFoundError):
        set_current_version(tmp_path, "20990101T000000Z-000000")
    with pytest.raises(FileNotFoundError):
        set_current_version(tmp_path, "../" + old)


def test_a_version_whose_metadata_names_another_id_is_refused(tmp_path):
    version, other = new_version_id(), new_version_id()
    with pytest.raises(ValueError, match=f"says version {other}"):
        publish_version(tmp_path, version, valid_metadata(other), {})
    assert visible_entries(tmp_path) == []


def test_placing_a_downloaded_folder_keeps_the_version_already_there(tmp_path):
    """The model sync's path: a verified download is renamed into place; a second download of a
    version the store already has is dropped, never swapped in under a serving backend."""
    version = new_version_id()
    for content in (b"first", b"second"):
        download = tmp_path / ".incoming" / version
        download.mkdir(parents=True)
        (download / "model.onnx").write_bytes(content)
        place_version(tmp_path, download, version)
        assert not download.exists()
    assert (tmp_path / version / "model.onnx").read_bytes() == b"first"
    assert list_versions(tmp_path) == [version]  # .incoming is not a version


def test_the_command_line_moves_current_and_names_what_it_cannot(tmp_path, capsys):
    old, new = new_version_id(), new_version_id()
    for version in (old, new):
        publish_version(tmp_path, version, valid_metadata(version), {})
    assert main(["set-current", str(tmp_path), old]) == 0
    assert main(["current", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == old
    assert main(["set-current", str(tmp_path), "20990101T000000Z-000000"]) == 1
    assert "no model version 20990101T000000Z-000000" in capsys.readouterr().err
    assert read_current_version(tmp_path) == old


def test_the_command_line_runs_without_numpy_or_jsonschema(tmp_path):
    """A deploy host's rollback runs it from a checkout with plain python3: the store's module
    must not need the contract's dependencies for anything but publishing."""
    version = new_version_id()
    publish_version(tmp_path, version, valid_metadata(version), {})
    (tmp_path / "CURRENT").unlink()
    blocked = "import sys; sys.modules.update(numpy=None, jsonschema=None, PIL=None); "
    run = "from mnist_contract.model_store import main; sys.exit(main(sys.argv[1:]))"
    source = Path(__file__).resolve().parents[1] / "src"
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            blocked + f"sys.path.insert(0, {str(source)!r}); " + run,
            "set-current",
            str(tmp_path),
            version,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert read_current_version(tmp_path) == version
