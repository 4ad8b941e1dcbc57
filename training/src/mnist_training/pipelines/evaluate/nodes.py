"""Evaluate the trained model on the held-out test split, clean and as real inputs look
(the robustness suite), and stop the run when a figure is below its floor."""

from __future__ import annotations

import logging
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on build machines
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import nn

from mnist_training.model import NUM_CLASSES
from mnist_training.parameters import EvaluateParams
from mnist_training.pipelines.train.nodes import predict_labels
from mnist_training.robustness import build_suite

logger = logging.getLogger(__name__)


class QualityFloorError(RuntimeError):
    """The model is below a floor of ``evaluate.floors``: nothing may be published."""


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Rows are true digits, columns predicted digits."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def evaluate_model(
    model: nn.Module, test: dict[str, np.ndarray], normalization: dict[str, float], history: dict[str, Any]
) -> dict[str, Any]:
    """Test accuracy, per-class accuracy and the confusion matrix, as plain JSON-able values."""
    predictions = predict_labels(model, test["images"], normalization)
    matrix = confusion_matrix(test["labels"], predictions)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return {
        "test_accuracy": float((predictions == test["labels"]).mean()),
        "per_class_accuracy": {str(digit): float(acc) for digit, acc in enumerate(per_class)},
        "n_test": len(test["labels"]),
        "confusion_matrix": matrix.tolist(),
        "training": history,
    }


def evaluate_robustness(
    model: nn.Module, test: dict[str, np.ndarray], normalization: dict[str, float], params: EvaluateParams
) -> dict[str, float]:
    """Accuracy on every variant of the robustness suite, built from the test split."""
    suite = build_suite(test["images"], test["labels"], params.robustness_seed)
    return {
        # A black image is an upload the backend would refuse as empty: an error, whatever it predicts.
        name: float(((predict_labels(model, images, normalization) == labels) & images.any(axis=(1, 2))).mean())
        for name, (images, labels) in suite.items()
    }


def evaluate_real_drawings(
    model: nn.Module, held_out: dict[str, np.ndarray], normalization: dict[str, float], feedback: dict[str, Any]
) -> dict[str, Any]:
    """Accuracy on the feedback snapshot's held-out corrections: drawings people made on the page,
    labelled by them and accepted by a reviewer. Empty without a snapshot (or none held out)."""
    count = len(held_out["labels"])
    if not count:
        return {}
    predictions = predict_labels(model, held_out["images"], normalization)
    accuracy = float((predictions == held_out["labels"]).mean())
    logger.info("Accuracy on %d real drawings (feedback snapshot %s): %.4f", count, feedback["sha256"][:12], accuracy)
    return {"accuracy": accuracy, "n": count, "snapshot_sha256": feedback["sha256"]}


def robustness_table(accuracies: dict[str, float], floors: dict[str, float]) -> str:
    """One line per figure: accuracy, its floor and whether it holds."""
    lines = [f"{'variant':<18} {'accuracy':>8} {'floor':>6}"]
    for name, value in accuracies.items():
        floor = floors.get(name)
        verdict = "" if floor is None else ("  ok" if value >= floor else "  BELOW FLOOR")
        lines.append(f"{name:<18} {value:>8.4f} {'-' if floor is None else f'{floor:g}':>6}{verdict}")
    return "\n".join(lines)


def check_floors(
    test_metrics: dict[str, Any], robustness: dict[str, float], real_drawings: dict[str, Any], params: EvaluateParams
) -> dict[str, Any]:
    """The run's metrics with the robustness figures; raises ``QualityFloorError`` naming every
    figure below its floor, so the export pipeline (which needs these metrics) never runs."""
    accuracies = {"clean": test_metrics["test_accuracy"], **robustness}
    logger.info(
        "Accuracy on the test split (n=%d):\n%s", test_metrics["n_test"], robustness_table(accuracies, params.floors)
    )
    below = [
        f"{name} {accuracies[name]:.4f} < {floor:g}"
        for name, floor in params.floors.items()
        if accuracies.get(name, 1.0) < floor  # a style with no test digit of its own has no figure
    ]
    if below and params.enforce_floors:
        raise QualityFloorError(
            f"the model is below its floor on {', '.join(below)} (evaluate.floors); nothing was published"
        )
    if below:
        logger.warning("Below floor, not enforced (evaluate.enforce_floors=false): %s", ", ".join(below))
    found = {"real_drawings": real_drawings} if real_drawings else {}
    return {**test_metrics, "robustness": robustness, "floors": dict(params.floors), **found}


def plot_confusion_matrix(metrics: dict[str, Any]) -> Figure:
    matrix = np.asarray(metrics["confusion_matrix"])
    figure, axes = plt.subplots(figsize=(6, 5.5), dpi=100)
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set(
        xticks=range(NUM_CLASSES),
        yticks=range(NUM_CLASSES),
        xlabel="predicted digit",
        ylabel="true digit",
        title=f"Test accuracy {metrics['test_accuracy']:.4f} (n={metrics['n_test']})",
    )
    threshold = matrix.max() / 2
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            axes.text(
                col,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if count > threshold else "black",
            )
    figure.tight_layout()
    return figure
