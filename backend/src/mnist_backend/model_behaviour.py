"""Run a model version on real held-out digits before it serves.

A version can pass every static check (its schema, the sha256 of its graph, the graph's input
and output names) and still break serving: answer NaN (probabilities of ``null``), have 20
classes (an ``IndexError`` on every request), loop for seconds on each digit, or declare an
accuracy it does not have. What it declares is the version's word; this is the service's own
look. The digits are training's default held-out test split, shipped with this package
(``data/heldout_digits.npz``, written by ``python -m mnist_training.heldout_digits``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

HELDOUT_FILE = Path(__file__).parent / "data" / "heldout_digits.npz"
NUM_CLASSES = 10

Logits = Callable[[np.ndarray], np.ndarray]  # normalized float32 [N, 1, 28, 28] -> raw output


class BehaviourError(ValueError):
    """The version misbehaves on real digits; the message says how."""


@dataclass(frozen=True)
class Behaviour:
    accuracy: float  # on the digits it was run on
    digits: int
    ms_per_image: float  # CPU time of one image alone (the faster of the at most two timed runs)


@cache
def heldout_digits(per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``[N, 28, 28]`` and labels: all 1,000, or the first ``per_class`` of each digit."""
    with np.load(HELDOUT_FILE) as data:
        images, labels = data["images"], data["labels"]
    if per_class is not None:
        keep = np.sort(np.concatenate([np.flatnonzero(labels == d)[:per_class] for d in range(NUM_CLASSES)]))
        images, labels = images[keep], labels[keep]
    return images, labels


def check_behaviour(
    logits_of: Logits, mean: float, std: float, max_ms_per_image: float, per_class: int | None = None
) -> Behaviour:
    """The version's raw output on held-out digits: one image alone first, timed, and timed once
    more only when over budget (the first call may pay one-off set-up), so a slow graph costs at
    most two runs; then all of them at once. Raises ``BehaviourError`` for a slow graph, an
    output that is not ``[N, 10]``, or a non-finite value."""
    images, labels = heldout_digits(per_class)
    inputs = ((images.astype(np.float32) / 255 - np.float32(mean)) / np.float32(std)).reshape(-1, 1, 28, 28)
    # CPU time, not wall time: a sync in a container with a quarter of a core is throttled for
    # tens of milliseconds at a time, which says nothing about the graph.
    elapsed = []
    for _ in range(2):
        started = time.process_time()
        logits_of(inputs[:1])
        elapsed.append((time.process_time() - started) * 1000)
        if elapsed[-1] <= max_ms_per_image:
            break
    if elapsed[-1] > max_ms_per_image:
        raise BehaviourError(
            f"one digit takes {elapsed[-1]:.0f} ms, over the {max_ms_per_image:g} ms budget (MAX_INFERENCE_MS)"
        )
    output = np.asarray(logits_of(inputs))
    if output.shape != (len(images), NUM_CLASSES):
        shape = "x".join(map(str, output.shape))
        raise BehaviourError(f"its output for {len(images)} digits is {shape}, not {len(images)}x{NUM_CLASSES}")
    if not np.isfinite(output).all():
        bad = int((~np.isfinite(output).all(axis=1)).sum())
        raise BehaviourError(f"it answers NaN or infinity for {bad} of {len(images)} held-out digits")
    accuracy = float((output.argmax(axis=1) == labels).mean())
    return Behaviour(accuracy=accuracy, digits=len(images), ms_per_image=min(elapsed))
