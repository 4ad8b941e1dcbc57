"""Accepted corrections from the drawing page, as training reads them.

The backend writes a snapshot (``.npz``: only arrays, never pickles) of the corrections an
admin accepted; training reads it. Which corrections are held out to measure the *real
drawings* accuracy is decided here, by each input's hash, so every snapshot of a growing
store holds out the same drawings and no drawing moves from the held-out part to training.
A snapshot is named by its SHA-256 (``<time>-<digest[:12]>.npz``, digest in ``<name>.sha256``).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_contract.canvas import MNIST_SIDE

FORMAT_VERSION = 1
# One distinct input in five is held out (by its hash, not by chance).
HELD_OUT_EVERY = 5
_ARRAYS = ("format_version", "images", "labels", "predicted", "input_hashes", "model_versions")


class SnapshotError(ValueError):
    """The file is not a feedback snapshot this code reads, or not the one its digest names."""


def input_hash(pixels: np.ndarray) -> str:
    """The SHA-256 of a 28x28 input as uint8 (0..255): what duplicates and the split are keyed on."""
    return hashlib.sha256(as_uint8(pixels).tobytes()).hexdigest()


def as_uint8(pixels: np.ndarray) -> np.ndarray:
    """A 28x28 input in 0..1 (float) or 0..255 (uint8) as uint8, MNIST's own storage."""
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels.reshape(MNIST_SIDE, MNIST_SIDE))
    scaled = np.clip(np.rint(np.asarray(pixels, dtype=np.float32) * 255.0), 0, 255)
    return scaled.astype(np.uint8).reshape(MNIST_SIDE, MNIST_SIDE)


def unit_floats_as_uint8(pixels: np.ndarray) -> np.ndarray:
    """``as_uint8`` of float32 pixels already in 0..1 (what a model is given): the same bytes in
    three NumPy calls instead of seven (nothing to clip). Every answer's feedback token makes one,
    and in a busy server each NumPy call costs several µs."""
    return np.rint(pixels * np.float32(255.0)).astype(np.uint8)


def is_held_out(hash_hex: str) -> bool:
    return int(hash_hex[:8], 16) % HELD_OUT_EVERY == 0


@dataclass(frozen=True)
class FeedbackSnapshot:
    images: np.ndarray  # uint8 [N, 28, 28], white digit on black, what the model saw
    labels: np.ndarray  # int64 [N], the digit the person said it was
    predicted: np.ndarray  # int64 [N], what the model answered
    input_hashes: tuple[str, ...]
    model_versions: tuple[str, ...]  # the version that answered each

    def __len__(self) -> int:
        return len(self.labels)

    def held_out(self) -> np.ndarray:
        """A boolean mask: True for the corrections that measure, never train."""
        return np.array([is_held_out(h) for h in self.input_hashes], dtype=bool)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            format_version=np.array(FORMAT_VERSION),
            images=self.images.astype(np.uint8),
            labels=self.labels.astype(np.int64),
            predicted=self.predicted.astype(np.int64),
            input_hashes=np.array(self.input_hashes, dtype="U64"),
            model_versions=np.array(self.model_versions, dtype="U64"),
        )
        return buffer.getvalue()


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_snapshot(path: Path, expected_digest: str | None = None) -> tuple[FeedbackSnapshot, str]:
    """The snapshot in ``path`` and its digest. ``expected_digest`` (else ``<path>.sha256``, when
    present) must match the file's, so training uses exactly the snapshot it was given."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SnapshotError(f"feedback snapshot {path} cannot be read: {error.strerror}") from error
    digest = digest_of(data)
    sidecar = path.with_name(path.name + ".sha256")
    if expected_digest is None and sidecar.is_file():
        expected_digest = sidecar.read_text().split()[0]
    if expected_digest is not None and expected_digest != digest:
        raise SnapshotError(f"feedback snapshot {path} has digest {digest}, not the {expected_digest} it was given as")
    return parse_snapshot(data, str(path)), digest


def parse_snapshot(data: bytes, name: str = "feedback snapshot") -> FeedbackSnapshot:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            missing = [key for key in _ARRAYS if key not in arrays.files]
            if missing:
                raise SnapshotError(f"{name} is not a feedback snapshot: it lacks {', '.join(missing)}")
            values = {key: arrays[key] for key in _ARRAYS}
    except (OSError, ValueError) as error:
        if isinstance(error, SnapshotError):
            raise
        raise SnapshotError(f"{name} is not a feedback snapshot (.npz): {error}") from error
    if int(values["format_version"]) != FORMAT_VERSION:
        raise SnapshotError(f"{name} has format {int(values['format_version'])}; this code reads {FORMAT_VERSION}")
    images, labels = values["images"], values["labels"]
    count = len(labels)
    if images.dtype != np.uint8 or images.shape != (count, MNIST_SIDE, MNIST_SIDE):
        raise SnapshotError(f"{name}: images must be uint8 [{count}, 28, 28], not {images.dtype} {images.shape}")
    for key in ("predicted", "input_hashes", "model_versions"):
        if len(values[key]) != count:
            raise SnapshotError(f"{name}: {key} has {len(values[key])} entries for {count} labels")
    if count and (labels.min() < 0 or labels.max() > 9):
        raise SnapshotError(f"{name}: labels must be digits 0..9")
    return FeedbackSnapshot(
        images=images,
        labels=labels.astype(np.int64),
        predicted=values["predicted"].astype(np.int64),
        input_hashes=tuple(str(h) for h in values["input_hashes"]),
        model_versions=tuple(str(v) for v in values["model_versions"]),
    )
