"""Four cheap statistics of a model input, and their summary over a training split.

Per 28x28 input (0..1, white on black, after canvas preprocessing): ink share, mean
intensity, bounding-box size and centre-of-mass offset. Training stores the summary of its
training split in each version's metadata (``data.input_statistics``: mean, std, p01, p50,
p99); serving measures every input it gives the model with the same ``measure`` and compares
the live figures with that summary (monitoring's drift alert fires when they part).
"""

from __future__ import annotations

import numpy as np

from mnist_contract.canvas import INK_THRESHOLD, MNIST_SIDE

STATISTICS = ("ink_share", "mean_intensity", "bbox_size_pixels", "centre_offset_pixels")
SUMMARY_QUANTITIES = ("mean", "std", "p01", "p50", "p99")
CENTRE = (MNIST_SIDE - 1) / 2


def measure(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Float ``[N, 28, 28]`` in 0..1 -> each statistic per image, float64 ``[N]``.

    ink_share: share of pixels above ``INK_THRESHOLD``; mean_intensity: the mean pixel value;
    bbox_size_pixels: the longer side of the box around the ink (0 when blank);
    centre_offset_pixels: distance of the intensity-weighted centre from the image centre.
    """
    images = pixels.reshape(-1, MNIST_SIDE, MNIST_SIDE)
    ink: np.ndarray = images > INK_THRESHOLD
    rows, cols = np.asarray(ink.any(axis=2)), np.asarray(ink.any(axis=1))
    row_mass, col_mass = images.sum(axis=2, dtype=np.float64), images.sum(axis=1, dtype=np.float64)
    mass = row_mass.sum(axis=1)
    coordinates = np.arange(MNIST_SIDE, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.hypot(row_mass @ coordinates / mass - CENTRE, col_mass @ coordinates / mass - CENTRE)
    return {
        "ink_share": ink.mean(axis=(1, 2)),
        "mean_intensity": mass / (MNIST_SIDE * MNIST_SIDE),
        "bbox_size_pixels": np.maximum(_extent(rows), _extent(cols)).astype(np.float64),
        "centre_offset_pixels": np.where(mass > 0, offset, 0.0),
    }


def _extent(inked: np.ndarray) -> np.ndarray:
    """Per image, the span from the first to the last inked row (or column); 0 without ink."""
    first = inked.argmax(axis=1)
    last = MNIST_SIDE - 1 - inked[:, ::-1].argmax(axis=1)
    return np.where(inked.any(axis=1), last - first + 1, 0)


def summarize(images: np.ndarray) -> dict[str, dict[str, float]]:
    """uint8 ``[N, 28, 28]`` (0..255) -> per statistic: mean, std and the 1st/50th/99th percentiles."""
    values = measure(np.asarray(images, dtype=np.float64) / 255.0)
    summary = {}
    for name in STATISTICS:
        column = values[name]
        p01, p50, p99 = np.percentile(column, [1, 50, 99])
        summary[name] = {
            "mean": round(float(column.mean()), 6),
            "std": round(float(column.std()), 6),
            "p01": round(float(p01), 6),
            "p50": round(float(p50), 6),
            "p99": round(float(p99), 6),
        }
    return summary
