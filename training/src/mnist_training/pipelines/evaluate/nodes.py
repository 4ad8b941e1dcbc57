"""Evaluate the trained model on the held-out test split."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on build machines
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import nn

from mnist_training.model import NUM_CLASSES
from mnist_training.pipelines.train.nodes import predict_labels


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
