"""Verify a downloaded version with the backend's own loader and publish it atomically into the
``models/<version>/`` + ``CURRENT`` contract: a backend following CURRENT never sees half a folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mnist_backend.model import CURRENT_FILENAME, ModelLoadError, load_model_version, resolve_version

INCOMING = ".incoming"  # dot folders are never served (the loader refuses names starting with '.')


class VerificationError(ValueError):
    """A downloaded version that must not be served; the reason names the check that failed."""


def current_version(model_dir: Path) -> str | None:
    """What CURRENT names, read as the backend reads it; None when there is nothing usable."""
    try:
        return resolve_version(model_dir, None)
    except ModelLoadError:
        return None


def incoming_dir(model_dir: Path, version_id: str) -> Path:
    """An empty folder for a download: ``models/.incoming/<version>/``."""
    target = model_dir / INCOMING / version_id
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    return target


def verify(downloaded: Path, expected_onnx_sha256: str) -> None:
    """Everything the backend checks when it loads (schema, sha256 of model.onnx, the graph's
    input and output), and that the files are the ones the registry recorded."""
    try:
        model = load_model_version(downloaded.parent, downloaded.name)
    except ModelLoadError as error:
        raise VerificationError(str(error)) from None
    if expected_onnx_sha256 and model.contract.onnx_sha256 != expected_onnx_sha256:
        raise VerificationError(
            f"metadata.json's onnx_sha256 {model.contract.onnx_sha256[:12]}… is not the registered "
            f"{expected_onnx_sha256[:12]}…"
        )


def publish(model_dir: Path, downloaded: Path, keep: int) -> None:
    """Move the verified folder into place (a rename), then point CURRENT at it (a rename too)."""
    version_id = downloaded.name
    final = model_dir / version_id
    if final.exists():
        shutil.rmtree(downloaded)  # versions are immutable: the one already here is the same
    else:
        for path in downloaded.iterdir():
            path.chmod(0o444)
        os.replace(downloaded, final)
    pointer = model_dir / f".{CURRENT_FILENAME}.sync"
    pointer.write_text(version_id + "\n")
    os.replace(pointer, model_dir / CURRENT_FILENAME)
    prune(model_dir, keep)


def prune(model_dir: Path, keep: int) -> list[str]:
    """Remove all but the ``keep`` newest versions (ids sort by time) and the current one."""
    current = current_version(model_dir)
    versions = sorted(p.name for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    removed = [v for v in versions[: max(len(versions) - keep, 0)] if v != current]
    for version in removed:
        shutil.rmtree(model_dir / version, ignore_errors=True)
    return removed
