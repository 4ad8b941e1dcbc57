"""What clients send, read within limits: 784 floats (or 28 rows of 28), or a base64 PNG/JPEG.

Images come from anyone, so decoding is bounded: the declared size is checked before a
single pixel is decoded, JPEGs decode straight at a reduced scale, and Pillow's metadata
caps bound what a header can cost. ``preprocess_image`` then hands the decoded image to the
model contract's canvas preprocessing (``mnist_contract.canvas``), the one the robustness
suite measures.
"""

from __future__ import annotations

import binascii
import io
import warnings

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from mnist_contract.canvas import MNIST_SIDE, InvalidImageError, preprocess_canvas_image

ACCEPTED_FORMATS = ("PNG", "JPEG")
# A JPEG decodes at the smallest 1/2, 1/4 or 1/8 scale that keeps at least this many pixels a side.
_JPEG_DRAFT_SIDE = 8 * MNIST_SIDE
# PNG text chunks and ICC profiles are metadata this service never reads, yet Pillow inflates
# them while it reads the header: by default 1 MiB a chunk and 64 MiB an image, from a few
# kilobytes of zTXt. Capped per image (Pillow's limits) and per request (``metadata_bytes``).
MAX_PNG_METADATA_BYTES = 256 * 1024
MAX_REQUEST_METADATA_BYTES = 1024 * 1024


class ImageTooLargeError(InvalidImageError):
    """The image (or the request's images together) has more pixels than the service decodes."""


def pixels_from_array(values: list, where: str = "image") -> np.ndarray:
    """784 floats or 28x28 nested floats (0..1, white on black) -> float32 ``[28, 28]``.

    The range is checked on the values as sent (float64, as JSON numbers are): 1.0000000000000002
    is over 1 even though float32 would round it to 1, so what the schema refuses is refused."""
    try:
        array = np.asarray(values, dtype=np.float64)
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
            f"{where} values must be between 0 and 1 (MNIST convention); value {index} is {float(array.flat[index])!r}"
        )
    return array.astype(np.float32)


def pixels_from_arrays(values: list[list], wheres: list[str]) -> np.ndarray:
    """Many images of pixel values -> float32 ``[N, 28, 28]``, in one conversion when all are valid.

    A batch of floats converts ~30 % faster in one call than image by image. Anything wrong
    (a bad value, a wrong or mixed shape) takes the per-image path, whose error names the image.
    """
    try:
        array = np.asarray(values, dtype=np.float64)  # the range is checked as sent (pixels_from_array)
    except (ValueError, TypeError):  # ragged, or shapes mixed between images
        array = np.empty(0, dtype=np.float64)
    well_formed = array.shape[1:] in ((MNIST_SIDE * MNIST_SIDE,), (MNIST_SIDE, MNIST_SIDE))
    if well_formed and array.min() >= 0 and array.max() <= 1:  # NaN fails both comparisons
        return array.reshape(len(values), MNIST_SIDE, MNIST_SIDE).astype(np.float32)
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
    """Open and size-check one image; ``preprocess_image`` decodes it."""
    image = open_base64_image(payload, where)
    check_image_size(image, max_pixels, where)
    return image


def preprocess_image(image: Image.Image, where: str = "image_base64") -> np.ndarray:
    """Decode an opened, size-checked image (a JPEG at a reduced scale) and preprocess it the
    contract's way: float32 ``[28, 28]`` in 0..1; ``InvalidImageError`` when unreadable or blank."""
    if image.format == "JPEG":
        image.draft("L", (_JPEG_DRAFT_SIDE, _JPEG_DRAFT_SIDE))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:  # text chunks after the pixels are read here
        raise unreadable_image(error, where) from None
    return preprocess_canvas_image(image)
