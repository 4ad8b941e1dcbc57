"""Turn what clients send into the 28x28 input the model was trained on.

MNIST digits are white on black, scaled to fit a 20x20 box (keeping aspect ratio) and
placed in a 28x28 image so that their centre of mass sits at the centre. A canvas drawing
is none of that: any size, often dark-on-light or on a transparent background, drawn
anywhere. ``preprocess_canvas_image`` performs the same steps MNIST's authors did.

Images come from anyone, so decoding is bounded: the declared size is checked before a
single pixel is decoded, JPEGs decode straight at a reduced scale, and every full-size step
runs on one 8-bit channel inside Pillow. Floats appear only for the final 20x20 digit.
"""

from __future__ import annotations

import binascii
import io
import warnings
from typing import cast

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

MNIST_SIDE = 28
DIGIT_BOX = 20
ACCEPTED_FORMATS = ("PNG", "JPEG")
# Below this intensity (0..1, after inversion and stretching) a pixel is background, not ink.
INK_THRESHOLD = 0.1
_INK_LEVEL = round(INK_THRESHOLD * 255)
# A JPEG decodes at the smallest 1/2, 1/4 or 1/8 scale that keeps at least this many pixels a side.
_JPEG_DRAFT_SIDE = 8 * MNIST_SIDE
# An opaque image's paper level (``paper_level``): the border's 95th percentile, or, when ink
# reaches the edges, its lower quartile plus PAPER_SPREADS times (lower quartile - 5th percentile).
PAPER_LOW_PERCENT = 5
PAPER_SPREADS = 4
# Alpha at or above this (0..255) everywhere means the transparency channel carries no drawing.
_OPAQUE = 253
# PNG text chunks and ICC profiles are metadata this service never reads, yet Pillow inflates
# them while it reads the header: by default 1 MiB a chunk and 64 MiB an image, from a few
# kilobytes of zTXt. Capped per image (Pillow's limits) and per request (``metadata_bytes``).
MAX_PNG_METADATA_BYTES = 256 * 1024
MAX_REQUEST_METADATA_BYTES = 1024 * 1024


class InvalidImageError(ValueError):
    """The input cannot be turned into a digit image; the message tells the client why."""


class ImageTooLargeError(InvalidImageError):
    """The image (or the request's images together) has more pixels than the service decodes."""


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


def pixels_from_arrays(values: list[list], wheres: list[str]) -> np.ndarray:
    """Many images of pixel values -> float32 ``[N, 28, 28]``, in one conversion when all are valid.

    A batch of floats converts ~30 % faster in one call than image by image. Anything wrong
    (a bad value, a wrong or mixed shape) takes the per-image path, whose error names the image.
    """
    try:
        with np.errstate(over="ignore"):
            array = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError):  # ragged, or shapes mixed between images
        array = np.empty(0, dtype=np.float32)
    well_formed = array.shape[1:] in ((MNIST_SIDE * MNIST_SIDE,), (MNIST_SIDE, MNIST_SIDE))
    if well_formed and array.min() >= 0 and array.max() <= 1:  # NaN fails both comparisons
        return array.reshape(len(values), MNIST_SIDE, MNIST_SIDE)
    return np.stack([pixels_from_array(value, where) for value, where in zip(values, wheres, strict=True)])


def limit_pillow_decoding(max_pixels: int) -> None:
    """Process-wide, once at start-up: Pillow refuses (instead of warning about) any image over
    ``max_pixels`` as soon as its header is read. One filter for the process rather than
    ``warnings.catch_warnings()`` around each image, which is not thread-safe and images decode
    on several threads."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    PngImagePlugin.MAX_TEXT_CHUNK = PngImagePlugin.MAX_TEXT_MEMORY = MAX_PNG_METADATA_BYTES


def unreadable_image(error: Exception, where: str) -> InvalidImageError:
    """What to tell the client about an image Pillow gave up on while reading it."""
    if "MAX_TEXT" in str(error):  # Pillow's text-chunk limits (see MAX_PNG_METADATA_BYTES)
        return InvalidImageError(
            f"{where} carries more than {MAX_PNG_METADATA_BYTES} bytes of PNG metadata (text chunks or an "
            "ICC profile); this service reads none of it: save the image without metadata"
        )
    return InvalidImageError(f"{where} is a truncated or corrupt image")


def metadata_bytes(image: Image.Image) -> int:
    """The text and profile bytes Pillow holds for an opened image."""
    return sum(len(value) for value in image.info.values() if isinstance(value, str | bytes))


def open_base64_image(payload: str, where: str = "image_base64") -> Image.Image:
    """A base64 PNG or JPEG (a ``data:image/...;base64,`` prefix is allowed), header read only.

    Nothing is decoded yet: the caller checks ``image.size`` against its limits first.
    Pillow's own bomb check (``limit_pillow_decoding``) still refuses absurd sizes here.
    """
    if payload.startswith("data:"):
        payload = payload.partition(",")[2]
    try:  # strict: any character outside the alphabet, or misplaced padding, is an error
        raw = binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError(f"{where} is not valid base64") from None
    if not raw:
        raise InvalidImageError(f"{where} is empty")
    try:
        return Image.open(io.BytesIO(raw), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"{where} has more pixels than this service decodes in one request ({Image.MAX_IMAGE_PIXELS})"
        ) from None
    except UnidentifiedImageError:
        raise InvalidImageError(f"{where} is not a PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise unreadable_image(error, where) from None


def check_image_size(image: Image.Image, max_pixels: int, where: str) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{where} is {width}x{height} pixels; at most {max_pixels} pixels are accepted (MAX_IMAGE_PIXELS)"
        )


def decode_base64_image(payload: str, max_pixels: int, where: str = "image_base64") -> Image.Image:
    """Open and size-check one image; ``preprocess_canvas_image`` decodes it."""
    image = open_base64_image(payload, where)
    check_image_size(image, max_pixels, where)
    return image


def ink_channel(image: Image.Image, where: str = "image_base64") -> Image.Image:
    """One 8-bit channel (Pillow ``L``) where 255 is ink, whatever the colours or transparency.

    Transparent backgrounds (canvas exports): the alpha channel is the ink. Opaque images:
    grayscale, inverted when the background (the border) is light, i.e. dark ink on paper, with
    the background's level subtracted.
    """
    if image.format == "JPEG":
        image.draft("L", (_JPEG_DRAFT_SIDE, _JPEG_DRAFT_SIDE))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:  # text chunks after the pixels are read here
        raise unreadable_image(error, where) from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = (image if image.mode != "P" else image.convert("RGBA")).getchannel("A")
        if channel_extrema(alpha)[0] < _OPAQUE:
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


def preprocess_canvas_image(image: Image.Image, where: str = "image_base64") -> np.ndarray:
    """Any drawing -> float32 ``[28, 28]`` in 0..1, MNIST-style; ``InvalidImageError`` if blank."""
    ink = ink_channel(image, where)
    pixels = np.asarray(ink)
    # The strongest stroke becomes full white (soft pens and JPEG greys still count); ink is
    # whatever reaches INK_THRESHOLD of it. Both are applied to the 20x20 digit, not the canvas.
    # Per-row and per-column maxima give the peak and the ink's bounding box without a
    # full-size boolean image (2x faster on a 280x280 canvas).
    row_peaks, column_peaks = pixels.max(axis=1), pixels.max(axis=0)
    peak = int(row_peaks.max())
    if peak < _INK_LEVEL:
        raise InvalidImageError("the image is empty: no digit was drawn")
    threshold = INK_THRESHOLD * peak
    rows, cols = np.flatnonzero(row_peaks > threshold), np.flatnonzero(column_peaks > threshold)
    cropped = ink.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    digit = np.minimum(fit_in_box(cropped, DIGIT_BOX) * (255.0 / peak), 1.0)
    canvas = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    top, left = (MNIST_SIDE - digit.shape[0]) // 2, (MNIST_SIDE - digit.shape[1]) // 2
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return center_by_mass(canvas)


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
