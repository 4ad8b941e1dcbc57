"""What the backend does to a drawing or an upload before the model sees it, reproduced here
so the robustness suite can send test digits through the same path real inputs take.

The backend owns this contract (``backend/src/mnist_backend/preprocessing.py``, described in
docs/architecture.md); training imports nothing from it. Steps, as MNIST's authors did them: find
the ink (inverting dark-on-light paper, taking off the paper's grey level, which ink touching
the edges must not own), crop to the ink's bounding box, fit it into a 20x20 box keeping the
aspect ratio, scale the strongest stroke to full white, paste it into 28x28 and shift it so its
centre of mass is the centre.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MNIST_SIDE = 28
DIGIT_BOX = 20
INK_THRESHOLD = 0.1  # share of the strongest stroke below which a pixel is background
PAPER_LOW_PERCENT = 5  # an opaque upload's paper level: see ``paper_level``
PAPER_SPREADS = 4


def ink_from_upload(gray: np.ndarray) -> np.ndarray:
    """An opaque 8-bit grayscale upload -> ink (255 = ink): inverted when the border is light,
    then the paper's level subtracted."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    light = np.partition(border, len(border) // 2)[len(border) // 2] > 127
    ink = (255 - gray) if light else gray
    # The paper never passes the middle of the image's range: contrast always leaves ink.
    middle = 255 - (int(gray.min()) + int(gray.max()) + 1) // 2 if light else (int(gray.min()) + int(gray.max())) // 2
    level = min(paper_level(255 - border if light else border), middle)
    return np.maximum(ink.astype(np.int16) - level, 0).astype(np.uint8)


def paper_level(border: np.ndarray) -> int:
    """The border's 95th percentile, unless ink touching the edges owns it: then the lower
    quartile plus 4 x (lower quartile - 5th percentile), read from the paper's dark side."""
    count = len(border)
    ranks = [count * PAPER_LOW_PERCENT // 100, count // 4, count - 1 - count * PAPER_LOW_PERCENT // 100]
    low, quartile, high = (int(value) for value in np.partition(border, ranks)[ranks])
    return min(high, quartile + PAPER_SPREADS * (quartile - low))


def to_mnist(ink: np.ndarray) -> np.ndarray:
    """8-bit ink of any size -> uint8 ``[28, 28]`` laid out like MNIST; ``ValueError`` if blank."""
    peak = int(ink.max())
    if peak < round(INK_THRESHOLD * 255):
        raise ValueError("the image is empty: no digit was drawn")
    inked = ink > INK_THRESHOLD * peak
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    cropped = Image.fromarray(np.ascontiguousarray(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]))
    scale = DIGIT_BOX / max(cropped.size)
    size = (max(1, round(cropped.width * scale)), max(1, round(cropped.height * scale)))
    digit = np.asarray(cropped.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0), dtype=np.float32)
    digit = np.minimum(digit / peak, 1.0)
    canvas = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    top, left = (MNIST_SIDE - digit.shape[0]) // 2, (MNIST_SIDE - digit.shape[1]) // 2
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.round(center_by_mass(canvas) * 255).astype(np.uint8)


def center_by_mass(image: np.ndarray) -> np.ndarray:
    """Shift by whole pixels (zero-filled) so the intensity-weighted centre is the image centre."""
    ys, xs = np.indices(image.shape)
    total = image.sum()
    target = (image.shape[0] - 1) / 2
    dy = round(target - (ys * image).sum() / total)
    dx = round(target - (xs * image).sum() / total)
    shifted = np.zeros_like(image)
    h, w = image.shape
    shifted[max(0, dy) : min(h, h + dy), max(0, dx) : min(w, w + dx)] = image[
        max(0, -dy) : min(h, h - dy), max(0, -dx) : min(w, w - dx)
    ]
    return shifted
