"""Verify a downloaded version with the backend's own loader, then publish it with the model
store's writer (``mnist_contract.model_store``): a backend following CURRENT never sees half a folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mnist_backend.model import ModelLoadError, load_model_version, resolve_version
from mnist_contract.model_store import list_versions, place_version, set_current_version

INCOMING = ".incoming"  # dot folders are never served (the loader refuses names starting with '.')


class VerificationError(ValueError):
    """A downloaded version that must not be served; the reason names the check that failed."""


@dataclass(frozen=True)
class BehaviourGate:
    """What a version must do on all 1,000 held-out digits the serving image carries, whatever
    its tags or its metadata say (an alias moved over the registry's API skips every client-side
    guard): score at least ``min_accuracy``, within ``tolerance`` of the test accuracy it
    declares (a constant-7 model that declares 0.999 scores 0.1), one digit within
    ``max_inference_ms``."""

    min_accuracy: float = 0.5
    tolerance: float = 0.05
    max_inference_ms: float = 50.0


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


def verify(downloaded: Path, expected_onnx_sha256: str, gate: BehaviourGate | None = None) -> None:
    """Everything the backend checks when it loads (schema, sha256 of model.onnx, the graph's
    input and output, its behaviour on held-out digits), that the files are the ones the
    registry recorded, and the ``gate`` on all held-out digits."""
    gate = gate or BehaviourGate()
    try:
        model = load_model_version(
            downloaded.parent, downloaded.name, max_inference_ms=gate.max_inference_ms, check_digits_per_class=None
        )
    except ModelLoadError as error:
        raise VerificationError(str(error)) from None
    measured, declared = model.behaviour.accuracy, model.test_accuracy
    if measured < gate.min_accuracy:
        raise VerificationError(
            f"accuracy {measured:.4f} on {model.behaviour.digits} held-out digits is below {gate.min_accuracy:g} "
            "(SYNC_MIN_ACCURACY)"
        )
    if declared - measured > gate.tolerance:
        raise VerificationError(
            f"declares test accuracy {declared:.4f} but scores {measured:.4f} on {model.behaviour.digits} held-out "
            f"digits (more than {gate.tolerance:g} below, SYNC_ACCURACY_TOLERANCE)"
        )
    if expected_onnx_sha256 and model.contract.onnx_sha256 != expected_onnx_sha256:
        raise VerificationError(
            f"metadata.json's onnx_sha256 {model.contract.onnx_sha256[:12]}… is not the registered "
            f"{expected_onnx_sha256[:12]}…"
        )


def publish(model_dir: Path, downloaded: Path, keep: int) -> None:
    """Move the verified folder into place (a rename), then point CURRENT at it (a rename too)."""
    place_version(model_dir, downloaded, downloaded.name)
    set_current_version(model_dir, downloaded.name)
    prune(model_dir, keep)


def prune(model_dir: Path, keep: int) -> list[str]:
    """Remove all but the ``keep`` newest versions (ids sort by time) and the current one."""
    current = current_version(model_dir)
    versions = list_versions(model_dir)
    removed = [v for v in versions[: max(len(versions) - keep, 0)] if v != current]
    for version in removed:
        shutil.rmtree(model_dir / version, ignore_errors=True)
    return removed
