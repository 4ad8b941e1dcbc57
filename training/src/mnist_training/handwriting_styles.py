"""Ways of writing digits that MNIST's (American) writers rarely used, added to real MNIST digits.

A 1 with a flag at its top (and often a base), a 7 crossed through its stem. Each style draws
the missing strokes onto a real digit with that digit's own stroke width, on a 4x canvas with
room around it, and lays the result out as the backend lays out a drawing
(``as_served``): a flag or a base changes the digit's box, which the 20x20 fit
and the centring must see. The robustness suite measures them; training learns them
(``styled_alternatives``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from mnist_training.as_served import as_served

Point = tuple[float, float]  # (x, y) in the 28x28 digit's pixels, y growing downwards
Strokes = Callable[[np.ndarray, np.random.Generator], list[tuple[Point, Point]]]

SCALE = 4  # strokes are drawn at 4x, so the layout's downsampling anti-aliases them
MARGIN = 14  # room (in 28x28 pixels) for strokes that leave the digit's box
INK = 128  # a pixel at or above this is part of a stroke


def stroke_width(image: np.ndarray) -> float:
    """The digit's pen width in pixels. Across a stroke w pixels wide the distances to the
    nearest background pixel run 1, 2, ..., 2, 1, whose mean is about (w + 2) / 4."""
    mask = image >= INK
    distances = ndimage.distance_transform_edt(mask)[mask]
    return float(np.clip(4 * distances.mean() - 2, 1.5, 5.0)) if distances.size else 1.5


def _end(image: np.ndarray, top: bool) -> Point:
    """The middle of the ink in the stroke's topmost (or bottommost) two rows."""
    rows = np.flatnonzero((image >= INK).any(axis=1))
    picked = rows[:2] if top else rows[-2:]
    ys, xs = np.nonzero(image[picked] >= INK)
    return float(xs.mean()), float(picked[ys].mean())


def flag_strokes(image: np.ndarray, rng: np.random.Generator) -> list[tuple[Point, Point]]:
    """A 1's flag: a short stroke from the top of the stem, down to the left, 25-50 degrees below
    the horizontal (at least 20 degrees off a stem that leans right, so it stays a flag; a long
    flat one would be a 7's bar)."""
    top, bottom = _end(image, top=True), _end(image, top=False)
    stem_x, stem_y = np.subtract(bottom, top)
    stem_angle = np.degrees(np.arctan2(stem_y, -stem_x))  # 90: upright; less: leaning right
    angle = np.deg2rad(max(10.0, min(rng.uniform(25, 50), stem_angle - 20)))
    length = float(np.hypot(stem_x, stem_y)) * rng.uniform(0.2, 0.35)
    return [(top, (top[0] - np.cos(angle) * length, top[1] + np.sin(angle) * length))]


def base_strokes(image: np.ndarray, rng: np.random.Generator) -> list[tuple[Point, Point]]:
    """A 1's base: a horizontal stroke through the foot of the stem."""
    top, (x, y) = _end(image, top=True), _end(image, top=False)
    half = (y - top[1]) * rng.uniform(0.2, 0.32)
    return [((x - half, y), (x + half, y))]


def crossbar_strokes(image: np.ndarray, rng: np.random.Generator) -> list[tuple[Point, Point]]:
    """A 7's crossbar: horizontal, through the stem a little above its middle. The stem runs from
    the right end of the top bar to the foot; of the ink in the crossbar's row, the run nearest
    to that line is the stem there."""
    mask = image >= INK
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    (foot_x, foot_y), top_y = _end(image, top=False), rows[0]
    top_x = float(np.flatnonzero(mask[top_y : top_y + 2].any(axis=0)).max())
    y = int(top_y + (foot_y - top_y) * rng.uniform(0.45, 0.6))
    stem_x = top_x + (foot_x - top_x) * (y - top_y) / max(foot_y - top_y, 1)
    inked = np.flatnonzero(mask[y])
    runs = np.split(inked, np.flatnonzero(np.diff(inked) > 1) + 1) if len(inked) else []
    x = float(min(runs, key=lambda run: abs(run.mean() - stem_x)).mean()) if runs else stem_x
    half = (cols[-1] - cols[0]) * rng.uniform(0.2, 0.3)
    return [((x - half, float(y)), (x + half, float(y)))]


def _with_strokes(strokes: Strokes) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def styled(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        side = (28 + 2 * MARGIN) * SCALE
        canvas = Image.new("L", (side, side), 0)
        enlarged = Image.fromarray(image).resize((28 * SCALE, 28 * SCALE), Image.Resampling.BILINEAR)
        canvas.paste(enlarged, (MARGIN * SCALE, MARGIN * SCALE))
        draw = ImageDraw.Draw(canvas)
        width = round(stroke_width(image) * SCALE)

        def at(point: Point) -> tuple[float, float]:
            return ((point[0] + MARGIN + 0.5) * SCALE, (point[1] + MARGIN + 0.5) * SCALE)

        for start, end in strokes(image, rng):
            draw.line([at(start), at(end)], fill=255, width=width)
            for point in (start, end):  # round pen ends, as a pen leaves them
                x, y = at(point)
                draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)
        return as_served(np.asarray(canvas))

    return styled


def _both(*parts: Strokes) -> Strokes:
    return lambda image, rng: [stroke for part in parts for stroke in part(image, rng)]


# Style name -> (the digit it is written for, how it is written).
STYLES: dict[str, tuple[int, Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = {
    "one_flag": (1, _with_strokes(flag_strokes)),
    "one_flag_base": (1, _with_strokes(_both(flag_strokes, base_strokes))),
    "seven_crossbar": (7, _with_strokes(crossbar_strokes)),
}


def styled_alternatives(images: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """For every image, a copy written in one of its digit's styles (drawn at random), or the
    image itself when its digit has none: training swaps a share of each batch for these."""
    rng = np.random.default_rng(seed)
    by_digit: dict[int, list[Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = {}
    for digit, style in STYLES.values():
        by_digit.setdefault(digit, []).append(style)
    out = images.copy()
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        styles = by_digit.get(int(label))
        if styles and (image >= INK).any():
            out[index] = styles[int(rng.integers(len(styles)))](image, rng)
    return out
