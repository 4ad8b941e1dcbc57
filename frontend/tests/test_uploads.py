"""Uploads are checked and shrunk by the page before anything reaches the backend."""

from __future__ import annotations

import io
import resource
import time

import pytest
from PIL import Image, ImageDraw

from mnist_frontend.backend_client import BackendClient
from mnist_frontend.config import FrontendSettings
from mnist_frontend.drawing import UPLOAD_SIDE, UploadError, shrink_upload


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_a_small_file_that_decodes_to_16_megapixels_is_shrunk_cheaply():
    bomb = encoded(Image.new("1", (4096, 4096)))  # a few KB of zlib
    assert len(bomb) < 10_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    shrunk = shrink_upload(bomb)
    elapsed = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert Image.open(io.BytesIO(shrunk)).size == (UPLOAD_SIDE, UPLOAD_SIDE)
    assert grown_mb < 100, f"peak memory grew {grown_mb:.0f} MB"
    assert elapsed < 5


def test_too_many_pixels_are_refused_with_the_size():
    huge = encoded(Image.new("L", (6000, 5000)))
    with pytest.raises(UploadError, match="6000×5000 pixels; the page accepts at most 24 megapixels"):
        shrink_upload(huge)


@pytest.mark.parametrize("data", [b"GIF89a not ours", b"", b"\x89PNG\r\n\x1a\nbroken"])
def test_files_that_are_not_images_are_refused_in_a_sentence(data):
    with pytest.raises(UploadError, match=r"not a PNG or JPEG|truncated or corrupt"):
        shrink_upload(data)


def test_a_large_photo_of_a_seven_is_shrunk_and_still_read_as_seven(backend_url):
    # A photographed "7": dark ink on light paper, 3000x2400 pixels, sent as JPEG.
    photo = Image.new("RGB", (3000, 2400), (235, 232, 225))
    draw = ImageDraw.Draw(photo)
    draw.line([(1100, 700), (1900, 700), (1350, 1800)], fill=(30, 30, 40), width=120)
    shrunk = shrink_upload(encoded(photo, "JPEG"))
    assert max(Image.open(io.BytesIO(shrunk)).size) == UPLOAD_SIDE
    prediction = BackendClient(FrontendSettings(backend_url=backend_url)).predict_png(shrunk)
    assert prediction.digit == 7


def test_transparency_survives_the_shrink():
    drawing = Image.new("RGBA", (1200, 1200), (0, 0, 0, 0))
    ImageDraw.Draw(drawing).ellipse((300, 200, 900, 1000), outline=(0, 0, 0, 255), width=80)
    shrunk = Image.open(io.BytesIO(shrink_upload(encoded(drawing))))
    assert shrunk.mode == "RGBA" and shrunk.getchannel("A").getextrema() == (0, 255)
