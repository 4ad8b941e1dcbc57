"""Write model versions into the model store (``models/<version>/`` and ``models/CURRENT``).

A version appears all at once or not at all: files are written into a hidden staging
directory next to the target and renamed into place, so a crashed run leaves nothing that
looks like a version, and a serving process never reads a half-written one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_FILENAME = "metadata.schema.json"
CURRENT_FILENAME = "CURRENT"
STAGING_PREFIX = ".incoming-"


def load_metadata_schema() -> dict[str, Any]:
    """The one definition of ``metadata.json``; each version also carries a copy of it."""
    text = resources.files("mnist_training").joinpath("model_metadata.schema.json").read_text()
    return json.loads(text)


def validate_metadata(metadata: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` naming the first field that breaks the contract."""
    jsonschema.validate(metadata, load_metadata_schema(), format_checker=jsonschema.FormatChecker())


def new_version_id(now: datetime | None = None) -> str:
    """Sortable by time, unique by a random suffix: ``20261123T120501Z-a1b2c3``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_models_dir_writable(models_dir: Path) -> None:
    """Fail early (before training) when the registry cannot be written."""
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
    """Validate ``metadata``, write it with ``files`` into ``models_dir/version`` atomically.

    ``files`` maps file names to their bytes, or to a function that writes the file at the
    path it is given (for outputs such as plots that know how to save themselves).
    """
    validate_metadata(metadata)
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
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        (staging / SCHEMA_FILENAME).write_text(json.dumps(load_metadata_schema(), indent=2) + "\n")
        for path in staging.iterdir():
            path.chmod(0o444)  # versions are immutable: make that visible on disk too
        staging.chmod(0o755)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if make_current:
        set_current_version(models_dir, version)
    return target


def set_current_version(models_dir: Path, version: str) -> None:
    """Point ``models/CURRENT`` at ``version`` with an atomic rename (readers never see it empty)."""
    if not (models_dir / version / "metadata.json").is_file():
        raise FileNotFoundError(f"no model version {version} in {models_dir}")
    fd, tmp = tempfile.mkstemp(prefix=".CURRENT-", dir=models_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(version + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, models_dir / CURRENT_FILENAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_current_version(models_dir: Path) -> str | None:
    path = models_dir / CURRENT_FILENAME
    if not path.is_file():
        return None
    return path.read_text().strip() or None
