"""From validated request values to predictions: no HTTP here."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mnist_backend.client_input import (
    MAX_REQUEST_METADATA_BYTES,
    MNIST_SIDE,
    ImageTooLargeError,
    InvalidImageError,
    check_image_size,
    decode_base64_image,
    metadata_bytes,
    open_base64_image,
    pixels_from_arrays,
    preprocess_image,
)
from mnist_backend.decode_pool import DecodePool
from mnist_backend.metrics import ServiceMetrics
from mnist_backend.model import LoadedModel

# A canvas drawing's base64 is 5-20 KB. Up to this many characters the image is read on the
# event loop (Pillow's metadata caps bound what its header can cost); a larger payload is
# base64-decoded and opened on a decode thread, like any large image.
INLINE_PAYLOAD_CHARS = 64 * 1024


class PixelBudgetExceededError(ImageTooLargeError):
    """One request's images have more pixels together than the service decodes per request (413)."""


class RequestAbandonedError(Exception):
    """The client went away; the rest of the batch is not worth computing."""


@dataclass(frozen=True)
class ImageLimits:
    max_image_pixels: int
    max_batch_pixels: int


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a call per field
class BatchResult:
    probabilities: np.ndarray  # [N, 10]
    pixels: np.ndarray  # [N, 28, 28], what the model saw (0..1)
    inference_ms: float
    # The same probabilities as Python lists and each image's digit (the first most probable):
    # made once, for the answer and the metrics, rather than a NumPy call for each.
    rows: list[list[float]]
    digits: list[int]

    def as_dicts(self, return_input: bool) -> list[dict]:
        results = []
        for index, (row, digit) in enumerate(zip(self.rows, self.digits, strict=True)):
            item = {"digit": digit, "confidence": row[digit], "probabilities": row}
            if return_input:
                item["input_image"] = np.round(self.pixels[index], 4).tolist()
            results.append(item)
        return results


async def image_to_pixels(payload: str, max_image_pixels: int, inline_pixels: int, pool: DecodePool) -> np.ndarray:
    """One base64 PNG/JPEG -> float32 ``[28, 28]`` in 0..1.

    The header is checked first. A small payload whose image has up to ``inline_pixels`` (a
    canvas drawing, about a millisecond) decodes right here, on the event loop: cheaper than a
    thread hop and the GIL handover after it. Anything larger is read on the pool, so it never
    stalls other requests.
    """
    inline = decode_inline(payload, max_image_pixels, inline_pixels)
    if inline is None:
        return await pool.run(_decode_and_preprocess, payload, max_image_pixels)
    if isinstance(inline, np.ndarray):
        return inline
    return await pool.run(preprocess_image, inline)


def decode_inline(payload: str, max_image_pixels: int, inline_pixels: int) -> np.ndarray | Image.Image | None:
    """The part of ``image_to_pixels`` done on the event loop: None for a payload too long to
    decode there, the decoded image when it has more than ``inline_pixels`` (preprocessed on the
    pool), else its pixels. ``InvalidImageError`` for an unreadable one."""
    if len(payload) > INLINE_PAYLOAD_CHARS:
        return None
    image = decode_base64_image(payload, max_image_pixels)
    return preprocess_image(image) if image.width * image.height <= inline_pixels else image


def _decode_and_preprocess(payload: str, max_image_pixels: int) -> np.ndarray:
    return preprocess_image(decode_base64_image(payload, max_image_pixels))


def batch_to_pixels(items: list, limits: ImageLimits, abandoned: threading.Event) -> np.ndarray:
    """Every item of a batch -> float32 ``[N, 28, 28]``, within the request's pixel budget.

    All headers are read before any pixel is decoded, so a batch over ``MAX_BATCH_PIXELS``
    costs only that; the metadata the headers carry has a budget of its own. Each image is
    released as soon as it is preprocessed, and the loop stops as soon as the client has gone.
    """
    opened: dict[int, Image.Image] = {}
    metadata = 0
    for index, item in enumerate(items):
        if isinstance(item, str):
            opened[index] = image = open_base64_image(item, f"images[{index}]")
            metadata += metadata_bytes(image)
            if metadata > MAX_REQUEST_METADATA_BYTES:
                raise InvalidImageError(
                    f"the batch's images carry more than {MAX_REQUEST_METADATA_BYTES} bytes of PNG metadata "
                    f"together (images[0..{index}]); this service reads none of it: save them without metadata"
                )
    total = sum(image.width * image.height for image in opened.values())
    if total > limits.max_batch_pixels:
        raise PixelBudgetExceededError(
            f"the batch's images have {total} pixels together; at most {limits.max_batch_pixels} "
            "are decoded per request (MAX_BATCH_PIXELS)"
        )
    pixels = np.empty((len(items), MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    arrays = [index for index in range(len(items)) if index not in opened]
    if arrays:
        pixels[arrays] = pixels_from_arrays([items[i] for i in arrays], [f"images[{i}]" for i in arrays])
    for done, index in enumerate(list(opened)):
        if abandoned.is_set():
            raise RequestAbandonedError(f"client disconnected after {done} of {len(opened) + done} images were decoded")
        where = f"images[{index}]"
        with opened.pop(index) as image:  # its decoded pixels go as soon as the digit is made
            check_image_size(image, limits.max_image_pixels, where)
            pixels[index] = preprocess_image(image, where)
    if abandoned.is_set():
        raise RequestAbandonedError("client disconnected before the model ran")
    return pixels


def run_model(model: LoadedModel, pixels: np.ndarray, metrics: ServiceMetrics, kind: str) -> BatchResult:
    """One vectorized ONNX Runtime call for the whole batch, recorded in the metrics."""
    started = time.perf_counter()
    probabilities = model.predict_proba(pixels)
    elapsed = time.perf_counter() - started
    metrics.record_inference(kind, elapsed, len(pixels))
    metrics.inputs.record(pixels)
    rows = probabilities.tolist()
    digits = [row.index(max(row)) for row in rows]  # argmax's choice: the first of equals
    metrics.record_predictions(digits, [row[digit] for row, digit in zip(rows, digits, strict=True)])
    return BatchResult(probabilities, pixels, elapsed * 1000, rows, digits)
