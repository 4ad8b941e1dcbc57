"""Reading what clients send within limits: pixel arrays, base64 PNG/JPEG, decoding bounds."""

from __future__ import annotations

import base64
import io
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from mnist_backend.client_input import (
    ImageTooLargeError,
    InvalidImageError,
    decode_base64_image,
    limit_pillow_decoding,
    open_base64_image,
    pixels_from_array,
    pixels_from_arrays,
    preprocess_image,
)
from mnist_testkit.drawings import draw_stroke_image
from tests.conftest import png_base64


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
        # Over 1 as sent, though float32 would round it to 1.0: the schema's maximum holds exactly.
        ([0.0] * 783 + [1.0000000000000002], "value 783 is 1.0000000000000002"),
        ([-1e-50] + [0.0] * 783, "value 0 is -1e-50"),
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
        preprocess_image(decode_base64_image(base64.b64encode(raw[: len(raw) // 2]).decode(), 10**7))


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
