"""Four cheap statistics of a model input, and their summary over the training split.

Serving measures the same four on every input it gives the model and compares the live
figures with the summary stored in the version's metadata (``data.input_statistics``): when
drawings stop looking like the training data, the figures part (monitoring's drift alert).
The definitions must match serving's (``mnist_backend.input_statistics``); a backend test
runs both on the same images. numpy only: that test loads this file without the package.
"""

from __future__ import annotations

import numpy as np

SIDE = 28
# A pixel at or above this intensity (0..1) is ink: the backend's INK_THRESHOLD.
INK_THRESHOLD = 0.1
CENTRE = (SIDE - 1) / 2
STATISTICS = ("ink_share", "mean_intensity", "bbox_size_pixels", "centre_offset_pixels")


def measure(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Float ``[N, 28, 28]`` in 0..1 (white on black) -> each statistic per image, float64 ``[N]``.

    ink_share: share of pixels that are ink; mean_intensity: the mean pixel value;
    bbox_size_pixels: the longer side of the box around the ink (0 when blank);
    centre_offset_pixels: how far the intensity-weighted centre lies from the image centre.
    """
    images = np.asarray(pixels, dtype=np.float64).reshape(-1, SIDE, SIDE)
    ink: np.ndarray = images > INK_THRESHOLD
    rows, cols = np.asarray(ink.any(axis=2)), np.asarray(ink.any(axis=1))
    mass = images.sum(axis=(1, 2))
    coordinates = np.arange(SIDE)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_y = images.sum(axis=2) @ coordinates / mass
        centre_x = images.sum(axis=1) @ coordinates / mass
    return {
        "ink_share": ink.mean(axis=(1, 2)),
        "mean_intensity": images.mean(axis=(1, 2)),
        "bbox_size_pixels": np.maximum(_extent(rows), _extent(cols)).astype(np.float64),
        "centre_offset_pixels": np.where(mass > 0, np.hypot(centre_y - CENTRE, centre_x - CENTRE), 0.0),
    }


def _extent(inked: np.ndarray) -> np.ndarray:
    """Per image, the span from the first to the last inked row (or column); 0 without ink."""
    first = inked.argmax(axis=1)
    last = SIDE - 1 - inked[:, ::-1].argmax(axis=1)
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
