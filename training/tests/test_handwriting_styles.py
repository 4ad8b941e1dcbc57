"""The handwriting styles draw what their names say on real digits, with the digit's own pen."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_training.as_served import as_served
from mnist_training.handwriting_styles import (
    STYLES,
    base_strokes,
    crossbar_strokes,
    flag_strokes,
    stroke_width,
    styled_alternatives,
)


@pytest.fixture(scope="module")
def test_split(small_splits) -> dict[str, np.ndarray]:
    return small_splits[2]


def digits_of(split: dict[str, np.ndarray], digit: int) -> np.ndarray:
    return split["images"][split["labels"] == digit]


@pytest.mark.parametrize("width", [2, 3, 4])
def test_stroke_width_measures_the_pen(width):
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([(6, 4), (20, 23)], fill=255, width=width)
    assert abs(stroke_width(np.asarray(image)) - width) <= 0.8


def test_a_flag_leaves_the_top_of_a_one_down_to_the_left(test_split):
    rng = np.random.default_rng(0)
    for one in digits_of(test_split, 1):
        [(start, end)] = flag_strokes(one, rng)
        rows = np.flatnonzero((one >= 128).any(axis=1))
        assert start[1] - rows[0] <= 1  # at the top of the stem
        run, drop = start[0] - end[0], end[1] - start[1]
        assert run > 0 and drop > 0  # down and to the left
        assert 10 <= np.degrees(np.arctan2(drop, run)) <= 50  # a flag, not a 7's flat bar


def test_a_base_is_horizontal_at_the_foot_and_a_crossbar_crosses_the_stem(test_split):
    rng = np.random.default_rng(0)
    for one in digits_of(test_split, 1):
        [(left, right)] = base_strokes(one, rng)
        rows = np.flatnonzero((one >= 128).any(axis=1))
        assert left[1] == right[1] and rows[-1] - left[1] <= 1 and right[0] > left[0]
    for seven in digits_of(test_split, 7):
        [(left, right)] = crossbar_strokes(seven, rng)
        y = int(left[1])
        inked = np.flatnonzero(seven[y] >= 128)
        rows = np.flatnonzero((seven >= 128).any(axis=1))
        assert rows[0] < y < rows[-1]
        assert len(inked) == 0 or (left[0] <= inked.max() and right[0] >= inked.min())  # across the ink


def test_a_styled_digit_keeps_the_digit_and_is_laid_out_like_a_drawing(test_split):
    rng = np.random.default_rng(0)
    for name, (digit, style) in STYLES.items():
        for image in digits_of(test_split, digit)[:10]:
            styled = style(image, rng)
            rows, cols = np.nonzero(styled > 25)
            assert np.ptp(rows) < 21 and np.ptp(cols) < 21, name
            # The original strokes are still there: most of the plain digit's ink stays inked.
            plain = as_served(image)
            assert (styled[plain > 127] > 60).mean() > 0.6, name


def test_styled_alternatives_change_only_the_digits_that_have_a_style(test_split):
    images, labels = test_split["images"], test_split["labels"]
    styled = styled_alternatives(images, labels, seed=3)
    has_style = np.isin(labels, [digit for digit, _ in STYLES.values()])
    changed = (styled != images).reshape(len(images), -1).any(axis=1)
    assert not changed[~has_style].any()
    assert changed[has_style].all()
    assert np.array_equal(styled, styled_alternatives(images, labels, seed=3))
