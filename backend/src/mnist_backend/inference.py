"""From validated request values to predictions: plain functions, no HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mnist_backend.metrics import ServiceMetrics
from mnist_backend.model import LoadedModel
from mnist_backend.preprocessing import decode_base64_image, pixels_from_array, preprocess_canvas_image


@dataclass(frozen=True)
class BatchResult:
    probabilities: np.ndarray  # [N, 10]
    pixels: np.ndarray  # [N, 28, 28], what the model saw (0..1)
    inference_ms: float

    def as_dicts(self, return_input: bool) -> list[dict]:
        digits = self.probabilities.argmax(axis=1)
        results = []
        for index, digit in enumerate(digits.tolist()):
            item = {
                "digit": digit,
                "confidence": float(self.probabilities[index, digit]),
                "probabilities": self.probabilities[index].tolist(),
            }
            if return_input:
                item["input_image"] = np.round(self.pixels[index], 4).tolist()
            results.append(item)
        return results


def to_pixels(item: list | str, max_image_pixels: int, where: str) -> np.ndarray:
    """One request image (pixel array or base64 PNG/JPEG) -> float32 ``[28, 28]`` in 0..1."""
    if isinstance(item, str):
        return preprocess_canvas_image(decode_base64_image(item, max_image_pixels, where))
    return pixels_from_array(item, where)


def run_model(model: LoadedModel, pixels: np.ndarray, metrics: ServiceMetrics, kind: str) -> BatchResult:
    """One vectorized ONNX Runtime call for the whole batch, recorded in the metrics."""
    started = time.perf_counter()
    probabilities = model.predict_proba(pixels)
    elapsed = time.perf_counter() - started
    metrics.record_inference(kind, elapsed, len(pixels))
    digits = probabilities.argmax(axis=1)
    metrics.record_predictions(digits.tolist(), probabilities[np.arange(len(digits)), digits].tolist())
    return BatchResult(probabilities, pixels, elapsed * 1000)
