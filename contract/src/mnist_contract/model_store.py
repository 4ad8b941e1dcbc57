"""The model store: ``models/<version>/`` folders and ``models/CURRENT``, the version to serve.

A version appears all at once or not at all: its files are written (or downloaded) into a
hidden folder next to the target and renamed into place, so a crashed writer leaves nothing
that looks like a version and a reader never sees half of one. ``CURRENT`` is replaced by a
rename too, so a reader never finds it empty. Versions are immutable: their files are made
read-only and a version id is never published twice.

Training publishes here, the model sync publishes what it downloaded and verified, and a
deploy's rollback moves ``CURRENT`` back with the command line below; nothing else writes.

    python3 -m mnist_contract.model_store set-current MODELS_DIR VERSION
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CURRENT_FILENAME = "CURRENT"
METADATA_FILENAME = "metadata.json"
SCHEMA_FILENAME = "metadata.schema.json"
# Optional: the version's model card (Markdown), which the backend serves as it is.
MODEL_CARD_FILENAME = "MODEL_CARD.md"
STAGING_PREFIX = ".incoming-"


def check_models_dir_writable(models_dir: Path) -> None:
    """Fail early (before training) when the model store cannot be written."""
    models_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(models_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"models directory {models_dir} is not writable")
    with tempfile.NamedTemporaryFile(dir=models_dir, prefix=".write-check-"):
        pass


def publish_version(
    models_dir: Path,
    version: str,
    metadata: dict[str, Any],
    files: dict[str, bytes | Callable[[Path], None]],
    make_current: bool = True,
) -> Path:
    """Check ``metadata`` against the schema, write it with ``files`` into ``models_dir/version``.

    ``files`` maps file names to their bytes, or to a function that writes the file at the
    path it is given (for outputs such as plots that know how to save themselves). Raises
    ``MetadataError`` before anything is written when the metadata breaks the contract.
    """
    # Imported here: the command line (set-current) runs without jsonschema installed.
    from mnist_contract.metadata import check_metadata, schema_document

    schema_version = check_metadata(metadata)
    if metadata["version"] != version:
        raise ValueError(f"metadata.json says version {metadata['version']}, the folder would be {version}")
    target = models_dir / version
    if target.exists():
        raise FileExistsError(f"model version {version} already exists in {models_dir}; versions are immutable")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=models_dir))
    try:
        for name, content in files.items():
            if callable(content):
                content(staging / name)
            else:
                (staging / name).write_bytes(content)
        (staging / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
        (staging / SCHEMA_FILENAME).write_text(json.dumps(schema_document(schema_version), indent=2) + "\n")
        place_version(models_dir, staging, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if make_current:
        set_current_version(models_dir, version)
    return target


def place_version(models_dir: Path, folder: Path, version: str) -> Path:
    """Make ``folder``'s files read-only and rename it to ``models_dir/version``, on the same
    file system. When that version is already there, it stays and ``folder`` is removed:
    versions are immutable, so the one in place is the same."""
    target = models_dir / version
    if target.exists():
        shutil.rmtree(folder)
        return target
    for path in folder.iterdir():
        path.chmod(0o444)  # versions are immutable: make that visible on disk too
    folder.chmod(0o755)
    os.rename(folder, target)
    return target


def set_current_version(models_dir: Path, version: str) -> None:
    """Point ``models/CURRENT`` at ``version`` with an atomic rename (readers never see it empty)."""
    if "/" in version or version.startswith(".") or not (models_dir / version / METADATA_FILENAME).is_file():
        raise FileNotFoundError(f"no model version {version} in {models_dir}")
    fd, tmp = tempfile.mkstemp(prefix=f".{CURRENT_FILENAME}-", dir=models_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(version + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, models_dir / CURRENT_FILENAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_current_version(models_dir: Path) -> str | None:
    """The version ``CURRENT`` names; None when there is no ``CURRENT`` or it is empty."""
    path = models_dir / CURRENT_FILENAME
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def list_versions(models_dir: Path) -> list[str]:
    """The versions in the store, oldest first (ids sort by time); hidden folders are not versions."""
    return sorted(path.name for path in models_dir.iterdir() if path.is_dir() and not path.name.startswith("."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_contract.model_store", description="The model store: models/<version>/ and CURRENT."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    set_current = commands.add_parser("set-current", help="point CURRENT at a version already in the store")
    set_current.add_argument("models_dir", type=Path)
    set_current.add_argument("version")
    commands.add_parser("current", help="print the version CURRENT names").add_argument("models_dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "current":
        version = read_current_version(args.models_dir)
        if version is None:
            print(f"{args.models_dir / CURRENT_FILENAME} does not name a version", file=sys.stderr)
            return 1
        print(version)
        return 0
    try:
        set_current_version(args.models_dir, args.version)
    except OSError as error:
        print(f"cannot point CURRENT at {args.version}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
