from __future__ import annotations

import base64
import io
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_backend.preprocessing import (
    ImageTooLargeError,
    InvalidImageError,
    center_by_mass,
    decode_base64_image,
    ink_channel,
    limit_pillow_decoding,
    open_base64_image,
    pixels_from_array,
    pixels_from_arrays,
    preprocess_canvas_image,
)
from tests.conftest import draw_stroke_image, png_base64


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


def test_pixel_arrays_in_both_shapes_give_the_same_image():
    flat = np.linspace(0, 1, 784, dtype=np.float32)
    np.testing.assert_array_equal(pixels_from_array(flat.tolist()), pixels_from_array(flat.reshape(28, 28).tolist()))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.0] * 783, "must have 784 values, got 783"),
        ([[0.0] * 28] * 27, "28 rows of 28 values, got shape 27x28"),
        ([[0.0] * 27] * 28, "got shape 28x27"),
        ([0.0] * 783 + [float("nan")], "finite"),
        ([0.0] * 783 + [float("inf")], "finite"),
        ([0.0] * 783 + [255.0], "between 0 and 1"),
        ([-0.5] + [0.0] * 783, "between 0 and 1"),
        ([[0.0] * 28] * 27 + [[0.0] * 3], "784 numbers or 28 rows of 28"),
    ],
)
def test_bad_pixel_arrays_are_rejected_with_a_reason(values, message):
    with pytest.raises(InvalidImageError, match=message):
        pixels_from_array(values)


def test_many_pixel_arrays_convert_like_one_at_a_time_in_either_shape():
    rng = np.random.default_rng(0)
    images = rng.random((5, 28, 28), dtype=np.float32)
    flat = [image.ravel().tolist() for image in images]
    nested = [image.tolist() for image in images]
    mixed = [flat[0], nested[1], flat[2]]  # shapes mixed between images: the per-image path
    wheres = [f"images[{i}]" for i in range(5)]
    for values in (flat, nested, mixed):
        expected = np.stack([pixels_from_array(v) for v in values])
        np.testing.assert_array_equal(pixels_from_arrays(values, wheres[: len(values)]), expected)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([0.0] * 783, "images\\[2\\] must have 784 values, got 783"),
        ([0.0] * 783 + [float("nan")], "images\\[2\\] values must be finite"),
        ([0.0] * 783 + [2.0], "images\\[2\\] values must be between 0 and 1"),
        ([[0.0] * 28] * 28, None),  # a valid image in the other shape
    ],
)
def test_a_bad_image_among_many_is_named(bad, message):
    values = [[0.5] * 784, [0.0] * 784, bad]
    wheres = ["images[0]", "images[1]", "images[2]"]
    if message is None:
        assert pixels_from_arrays(values, wheres).shape == (3, 28, 28)
        return
    with pytest.raises(InvalidImageError, match=message):
        pixels_from_arrays(values, wheres)


def test_base64_png_and_jpeg_decode_and_data_urls_are_accepted():
    image = draw_stroke_image()
    assert decode_base64_image(png_base64(image), 10**7).size == (280, 280)
    jpeg = io.BytesIO()
    image.save(jpeg, format="JPEG")
    encoded = base64.b64encode(jpeg.getvalue()).decode()
    assert decode_base64_image("data:image/jpeg;base64," + encoded, 10**7).format == "JPEG"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not base64 at all!", "not valid base64"),
        ("", "empty"),
        (base64.b64encode(b"GIF89a fake").decode(), "not a PNG or JPEG"),
        (base64.b64encode(b"hello world, not an image").decode(), "not a PNG or JPEG"),
    ],
)
def test_undecodable_images_are_rejected(payload, message):
    with pytest.raises(InvalidImageError, match=message):
        decode_base64_image(payload, 10**7)


def test_truncated_png_is_rejected():
    raw = base64.b64decode(png_base64(draw_stroke_image()))
    with pytest.raises(InvalidImageError, match=r"truncated or corrupt|not a PNG"):
        preprocess_canvas_image(decode_base64_image(base64.b64encode(raw[: len(raw) // 2]).decode(), 10**7))


def test_oversized_images_are_refused_before_decoding():
    with pytest.raises(InvalidImageError, match="at most 10000 pixels"):
        decode_base64_image(png_base64(Image.new("L", (200, 200))), max_pixels=10_000)


@pytest.fixture
def pillow_limit():
    """``limit_pillow_decoding`` changes process-wide state: put Pillow's limit and the filters back."""
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        yield limit_pillow_decoding
    Image.MAX_IMAGE_PIXELS = before


def test_pillow_refuses_images_over_the_limit_from_their_header_on_many_threads_at_once(pillow_limit):
    pillow_limit(10_000)
    # 120x120 is where Pillow only warns (up to twice its limit), 200x200 where it raises itself.
    payloads = [png_base64(Image.new("L", (side, side))) for side in (120, 200)] * 200

    def refused(payload: str) -> bool:
        try:
            open_base64_image(payload)
        except ImageTooLargeError as error:
            return "more pixels than this service decodes in one request (10000)" in str(error)
        return False

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(refused, payloads))
    assert open_base64_image(png_base64(Image.new("L", (100, 100)))).size == (100, 100)


def test_ink_of_a_palette_image_with_transparency_is_its_alpha():
    image = draw_stroke_image().convert("P")
    image.info["transparency"] = 0
    ink = ink_channel(image)
    assert ink.mode == "L" and ink.getextrema() == (0, 255)
