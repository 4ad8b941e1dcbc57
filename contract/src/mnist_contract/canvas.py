"""A drawing or an upload -> the 28x28 input the model was trained on.

MNIST digits are white on black, scaled to fit a 20x20 box (keeping aspect ratio) and
placed in a 28x28 image so that their centre of mass sits at the centre. A canvas drawing
or a photo is none of that: any size, often dark on light paper or on a transparent
background, drawn anywhere. ``preprocess_canvas_image`` performs the steps MNIST's authors
did. Serving runs it on every image a client sends; the robustness suite runs it on every
upload-like variant it builds, so the figure it reports is the served code's.

Every full-size step runs on one 8-bit channel inside Pillow; floats appear only for the
final 20x20 digit. Decoding (and its limits) is the caller's: an image handed in here is
read as it is.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from PIL import Image, ImageOps

MNIST_SIDE = 28
DIGIT_BOX = 20
# Below this intensity (0..1, after inversion and stretching) a pixel is background, not ink.
INK_THRESHOLD = 0.1
INK_LEVEL = round(INK_THRESHOLD * 255)
# An opaque image's paper level (``paper_level``): the border's 95th percentile, or, when ink
# reaches the edges, its lower quartile plus PAPER_SPREADS times (lower quartile - 5th percentile).
PAPER_LOW_PERCENT = 5
PAPER_SPREADS = 4
# Alpha at or above this (0..255) everywhere means the transparency channel carries no drawing.
OPAQUE = 253


class InvalidImageError(ValueError):
    """The input cannot be turned into a digit image; the message tells the client why."""


def preprocess_canvas_image(image: Image.Image) -> np.ndarray:
    """Any drawing -> float32 ``[28, 28]`` in 0..1, MNIST-style; ``InvalidImageError`` if blank."""
    ink = ink_channel(image)
    pixels = np.asarray(ink)
    # The strongest stroke becomes full white (soft pens and JPEG greys still count); ink is
    # whatever reaches INK_THRESHOLD of it. Both are applied to the 20x20 digit, not the canvas.
    # Per-row and per-column maxima give the peak and the ink's bounding box without a
    # full-size boolean image (2x faster on a 280x280 canvas).
    row_peaks, column_peaks = pixels.max(axis=1), pixels.max(axis=0)
    peak = int(row_peaks.max())
    if peak < INK_LEVEL:
        raise InvalidImageError("the image is empty: no digit was drawn")
    threshold = INK_THRESHOLD * peak
    rows, cols = np.flatnonzero(row_peaks > threshold), np.flatnonzero(column_peaks > threshold)
    cropped = ink.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    digit = np.minimum(fit_in_box(cropped, DIGIT_BOX) * (255.0 / peak), 1.0)
    canvas = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    top, left = (MNIST_SIDE - digit.shape[0]) // 2, (MNIST_SIDE - digit.shape[1]) // 2
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return center_by_mass(canvas)


def ink_channel(image: Image.Image) -> Image.Image:
    """One 8-bit channel (Pillow ``L``) where 255 is ink, whatever the colours or transparency.

    Transparent backgrounds (canvas exports): the alpha channel is the ink. Opaque images:
    grayscale, inverted when the background (the border) is light, i.e. dark ink on paper, with
    the background's level subtracted.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = (image if image.mode != "P" else image.convert("RGBA")).getchannel("A")
        if channel_extrema(alpha)[0] < OPAQUE:
            return alpha
    gray = image if image.mode == "L" else image.convert("L")  # a canvas PNG already is: no copy
    pixels = np.asarray(gray)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    light = bool(np.partition(border, len(border) // 2)[len(border) // 2] > 127)
    ink = ImageOps.invert(gray) if light else gray
    paper = 255 - border if light else border
    level = 0  # a drawing's black border (every canvas drawing): nothing to take off
    if paper.any():
        # Paper is the dark side of the ink channel: its level never passes the middle of the
        # image's range, so an image with contrast keeps half of it as ink (never "empty").
        darkest, brightest = channel_extrema(gray)
        middle = 255 - (darkest + brightest + 1) // 2 if light else (darkest + brightest) // 2
        level = min(paper_level(paper), middle)
    return ink.point([max(0, value - level) for value in range(256)]) if level else ink


def paper_level(border: np.ndarray) -> int:
    """The background level of an opaque image, from its border after inversion (ink bright).

    Photographed or scanned paper is never black after inversion: a grey, noisy background
    would count as ink and shrink the digit inside a grey square, so this level is taken off
    every pixel. Nearly all of the paper stays under its 95th percentile, but a digit cropped
    tight to its ink touches the edges, and then that percentile is the ink's own level. Ink is
    always the bright side of the border, so a second estimate reads the paper from its dark
    side: the lower quartile plus a multiple of its distance to the 5th percentile (about
    3 sigma above the mean for Gaussian noise), which ink on up to three quarters of the border
    cannot raise. The smaller of the two is the level.
    """
    count = len(border)
    ranks = [count * PAPER_LOW_PERCENT // 100, count // 4, count - 1 - count * PAPER_LOW_PERCENT // 100]
    low, quartile, high = (int(value) for value in np.partition(border, ranks)[ranks])
    return min(high, quartile + PAPER_SPREADS * (quartile - low))


def channel_extrema(channel: Image.Image) -> tuple[int, int]:
    """Smallest and largest value of a one-band 8-bit image."""
    return cast(tuple[int, int], channel.getextrema())


def fit_in_box(ink: Image.Image, box: int) -> np.ndarray:
    """Resize so the longer side is ``box`` pixels, keeping the aspect ratio (anti-aliased).

    ``reducing_gap`` first shrinks a large crop by whole-pixel averaging, so a 2 MP photo
    costs about what a canvas drawing does. Returns float32 in 0..1.
    """
    width, height = ink.size
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = ink.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(resized, dtype=np.float32) * np.float32(1 / 255)


def center_by_mass(image: np.ndarray) -> np.ndarray:
    """Shift (by whole pixels, zero-filled) so the intensity-weighted centre is the image centre."""
    total = image.sum()
    # The weighted row and column sums: two small dot products instead of two full-size grids.
    center_y = image.sum(axis=1, dtype=np.float64) @ np.arange(image.shape[0]) / total
    center_x = image.sum(axis=0, dtype=np.float64) @ np.arange(image.shape[1]) / total
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


def as_8bit(pixels: np.ndarray) -> np.ndarray:
    """A preprocessed float image (0..1) as 8-bit MNIST pixels (0..255), the way MNIST stores them."""
    return np.round(pixels * 255).astype(np.uint8)
