"""Turn what clients send into the 28x28 input the model was trained on.

MNIST digits are white on black, scaled to fit a 20x20 box (keeping aspect ratio) and
placed in a 28x28 image so that their centre of mass sits at the centre. A canvas drawing
is none of that: any size, often dark-on-light or on a transparent background, drawn
anywhere. ``preprocess_canvas_image`` performs the same steps MNIST's authors did.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

MNIST_SIDE = 28
DIGIT_BOX = 20
ACCEPTED_FORMATS = ("PNG", "JPEG")
# Below this intensity (0..1, after inversion) a pixel is background, not ink.
INK_THRESHOLD = 0.1


class InvalidImageError(ValueError):
    """The input cannot be turned into a digit image; the message tells the client why."""


def pixels_from_array(values: list, where: str = "image") -> np.ndarray:
    """784 floats or 28x28 nested floats (0..1, white on black) -> float32 ``[28, 28]``."""
    try:
        with np.errstate(over="ignore"):  # 1e300 becomes inf, which the finiteness check names
            array = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError):
        raise InvalidImageError(f"{where} must be 784 numbers or 28 rows of 28 numbers") from None
    if array.shape == (MNIST_SIDE * MNIST_SIDE,):
        array = array.reshape(MNIST_SIDE, MNIST_SIDE)
    elif array.shape != (MNIST_SIDE, MNIST_SIDE):
        if array.ndim == 1:
            raise InvalidImageError(f"{where} must have 784 values, got {array.shape[0]}")
        raise InvalidImageError(f"{where} must be 28 rows of 28 values, got shape {'x'.join(map(str, array.shape))}")
    # One pass on the happy path: NaN propagates through min/max and fails the comparison.
    if not (array.min() >= 0 and array.max() <= 1):
        if not np.isfinite(array).all():
            index = int(np.flatnonzero(~np.isfinite(array))[0])
            raise InvalidImageError(f"{where} values must be finite numbers; value {index} is {array.flat[index]}")
        index = int(np.flatnonzero((array < 0) | (array > 1))[0])
        raise InvalidImageError(
            f"{where} values must be between 0 and 1 (MNIST convention); value {index} is {array.flat[index]:g}"
        )
    return array


def decode_base64_image(payload: str, max_pixels: int, where: str = "image_base64") -> Image.Image:
    """A base64 PNG or JPEG (a ``data:image/...;base64,`` prefix is allowed) -> a Pillow image."""
    if payload.startswith("data:"):
        payload = payload.partition(",")[2]
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError(f"{where} is not valid base64") from None
    if not raw:
        raise InvalidImageError(f"{where} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=ACCEPTED_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidImageError(f"{where} is {width}x{height} pixels; at most {max_pixels} pixels are accepted")
            image.load()
    except InvalidImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImageError(f"{where} is not a PNG or JPEG image (or is too large to decode)") from None
    except (OSError, SyntaxError, ValueError):
        raise InvalidImageError(f"{where} is a truncated or corrupt image") from None
    return image


def ink_intensity(image: Image.Image) -> np.ndarray:
    """float ``[H, W]`` in 0..1 where 1 is ink, whatever the colours or transparency.

    Transparent backgrounds (canvas exports): the alpha channel is the ink. Opaque images:
    grayscale, inverted when the background (the border) is light, i.e. dark ink on paper.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        if alpha.min() < 0.99:
            return alpha
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 1.0 - gray if np.median(border) > 0.5 else gray


def preprocess_canvas_image(image: Image.Image) -> np.ndarray:
    """Any drawing -> float32 ``[28, 28]`` in 0..1, MNIST-style; ``InvalidImageError`` if blank."""
    ink = ink_intensity(image)
    # Stretch so the strongest stroke is full white (soft pens and JPEG greys still count).
    peak = float(ink.max())
    if peak < INK_THRESHOLD:
        raise InvalidImageError("the image is empty: no digit was drawn")
    ink = ink / peak
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    cropped = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    digit = fit_in_box(cropped, DIGIT_BOX)
    canvas = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    top, left = (MNIST_SIDE - digit.shape[0]) // 2, (MNIST_SIDE - digit.shape[1]) // 2
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return center_by_mass(canvas)


def fit_in_box(ink: np.ndarray, box: int) -> np.ndarray:
    """Resize so the longer side is ``box`` pixels, keeping the aspect ratio (anti-aliased)."""
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(ink, mode="F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def center_by_mass(image: np.ndarray) -> np.ndarray:
    """Shift (by whole pixels, zero-filled) so the intensity-weighted centre is the image centre."""
    total = image.sum()
    ys, xs = np.indices(image.shape)
    center_y, center_x = (ys * image).sum() / total, (xs * image).sum() / total
    target = (image.shape[0] - 1) / 2
    shift_y, shift_x = round(target - center_y), round(target - center_x)
    return shift_image(image, shift_y, shift_x)


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    shifted = np.zeros_like(image)
    h, w = image.shape
    src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    shifted[dst_y, dst_x] = image[src_y, src_x]
    return shifted
