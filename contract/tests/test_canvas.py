"""The canvas preprocessing: any drawing or upload -> MNIST's layout (20x20 box, centred by
mass, white on black), whatever its size, polarity, paper or transparency."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_contract.canvas import InvalidImageError, center_by_mass, ink_channel, preprocess_canvas_image
from mnist_testkit.drawings import draw_stroke_image


def bounding_box(image: np.ndarray, threshold: float = 0.05) -> tuple[int, int]:
    rows = np.flatnonzero((image > threshold).any(axis=1))
    cols = np.flatnonzero((image > threshold).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    return (ys * image).sum() / image.sum(), (xs * image).sum() / image.sum()


def test_small_digit_in_a_corner_is_scaled_into_20x20_and_centred_by_mass():
    drawing = draw_stroke_image(size=280, box=(8, 8, 48, 78), width=10)
    result = preprocess_canvas_image(drawing)
    assert result.shape == (28, 28) and result.dtype == np.float32
    height, width = bounding_box(result)
    assert height <= 20 and width <= 20
    assert max(height, width) >= 19  # scaled up to fill the box, aspect kept
    cy, cx = centre_of_mass(result)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert result.min() >= 0 and result.max() <= 1


def test_dark_on_light_is_inverted_to_white_on_black():
    light = Image.eval(draw_stroke_image(), lambda v: 255 - v)
    result = preprocess_canvas_image(light)
    reference = preprocess_canvas_image(draw_stroke_image())
    np.testing.assert_allclose(result, reference, atol=1e-5)
    assert result[0, 0] == 0  # background is black


def test_a_photo_of_grey_noisy_paper_reads_like_the_clean_drawing():
    """Grey paper stays grey after inversion; without taking its level off, the whole photo
    would be "ink" and the digit would shrink inside a grey square."""
    rng = np.random.default_rng(3)
    ink = np.asarray(draw_stroke_image(), dtype=np.float64) / 255
    photo = 205 - ink * 160 + rng.normal(0, 5, ink.shape)
    result = preprocess_canvas_image(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)))
    reference = preprocess_canvas_image(draw_stroke_image())
    assert bounding_box(result, threshold=0.2) == bounding_box(reference, threshold=0.2)
    assert result[reference == 0].max() < 0.1  # no grey square behind the digit
    assert np.abs(result - reference).mean() < 0.03


def test_transparent_background_uses_alpha_as_ink_whatever_the_colour():
    ink = draw_stroke_image()
    for colour in ((0, 0, 0), (255, 255, 255), (200, 30, 30)):
        rgba = Image.new("RGBA", ink.size, (*colour, 0))
        rgba.putalpha(ink)
        np.testing.assert_allclose(preprocess_canvas_image(rgba), preprocess_canvas_image(ink), atol=1e-5)


def test_opaque_rgba_canvas_is_read_as_grayscale():
    rgba = draw_stroke_image().convert("RGBA")  # alpha 255 everywhere: a canvas with a background
    np.testing.assert_allclose(preprocess_canvas_image(rgba), preprocess_canvas_image(draw_stroke_image()), atol=1e-5)


@pytest.mark.parametrize("background", [0, 255])
def test_empty_canvas_is_refused_not_guessed(background):
    with pytest.raises(InvalidImageError, match="empty"):
        preprocess_canvas_image(Image.new("L", (280, 280), background))


def test_fully_transparent_canvas_is_empty():
    with pytest.raises(InvalidImageError, match="empty"):
        preprocess_canvas_image(Image.new("RGBA", (280, 280), (0, 0, 0, 0)))


def test_wide_strokes_keep_their_aspect_ratio():
    image = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(image).line([(20, 140), (260, 140)], fill=255, width=20)  # a wide dash
    height, width = bounding_box(preprocess_canvas_image(image))
    assert width == 20 and height <= 3


def test_center_by_mass_moves_ink_to_the_middle():
    image = np.zeros((28, 28), np.float32)
    image[2:6, 3:7] = 1
    cy, cx = centre_of_mass(center_by_mass(image))
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5


def test_ink_of_a_palette_image_with_transparency_is_its_alpha():
    image = draw_stroke_image().convert("P")
    image.info["transparency"] = 0
    ink = ink_channel(image)
    assert ink.mode == "L" and ink.getextrema() == (0, 255)
