"""From what the canvas or an upload gives to PNG bytes for the backend (no Streamlit here)."""

from __future__ import annotations

import base64
import io
import json
from importlib import resources

import numpy as np
from PIL import Image, ImageFile, PngImagePlugin, UnidentifiedImageError

# The canvas draws white ink on black; a pixel this bright anywhere means something was drawn.
INK_LEVEL = 32
# Uploads: a 24 MP phone photo is the largest the page opens; what it sends on is at most this
# many pixels a side (the backend reduces to 20x20 anyway, and accepts 2 MP).
MAX_UPLOAD_PIXELS = 24_000_000
UPLOAD_SIDE = 560
# PNG text chunks are inflated while a header is read (64 MiB an image by Pillow's default); the
# page reads none of them. Process-wide, set once when the page's code is imported.
PngImagePlugin.MAX_TEXT_CHUNK = PngImagePlugin.MAX_TEXT_MEMORY = 256 * 1024


class UploadError(ValueError):
    """The upload cannot be used; the message is for the person at the page."""


class CanvasExportError(ValueError):
    """What came back as the canvas's drawing is not the canvas's PNG; the message is for the page."""


def shrink_upload(data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS, side: int = UPLOAD_SIDE) -> bytes:
    """An uploaded PNG/JPEG, checked and reduced to at most ``side`` pixels a side, as PNG.

    The size is read from the header before anything is decoded, and JPEGs decode at a
    reduced scale, so a hostile file costs the page as little as it would cost the backend.
    """
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
    except Image.DecompressionBombError:
        raise UploadError(
            f"That image has far more than {max_pixels // 1_000_000} megapixels; the page refuses it."
        ) from None
    except (UnidentifiedImageError, OSError):
        raise UploadError("That file is not a PNG or JPEG image the page can open.") from None
    width, height = image.size
    if width * height > max_pixels:
        raise UploadError(
            f"That image is {width}×{height} pixels; the page accepts at most {max_pixels // 1_000_000} megapixels."
        )
    try:
        if isinstance(image, ImageFile.ImageFile):
            image.draft(image.mode, (side, side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale when that suffices
        image.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    except (OSError, SyntaxError, ValueError):
        raise UploadError("That image is truncated or corrupt.") from None
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "transparency" in image.info or image.mode in ("PA", "P") else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def canvas_export_png(export: bytes | None, side: int) -> bytes | None:
    """The canvas's own export (a PNG of exactly ``side`` x ``side``) as the PNG for the backend,
    or None while it is blank.

    The export comes from the browser, which anyone controls: anything else (another format,
    another size, metadata beyond the caps) is refused from its header, before a pixel is
    decoded. A 100 KB frame declaring 24 megapixels used to cost the page 400 MB.
    """
    if export is None:
        return None
    refused = CanvasExportError("The drawing could not be read; clear the canvas and draw again.")
    try:
        image = Image.open(io.BytesIO(export), formats=("PNG",))
        if image.size != (side, side):
            raise refused
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise refused from error
    return canvas_png(np.asarray(image.convert("RGBA")))


def canvas_png(image_data: np.ndarray | None) -> bytes | None:
    """The canvas's RGBA array as PNG bytes, or None while it is blank."""
    if image_data is None:
        return None
    rgba = np.asarray(image_data, dtype=np.float32)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        return None
    # Strokes may come with transparent surroundings: weigh brightness by opacity (ink on black).
    ink = (rgba[..., :3].max(axis=2) * rgba[..., 3] / 255.0).astype(np.uint8)
    if int(ink.max()) < INK_LEVEL:
        return None
    buffer = io.BytesIO()
    Image.fromarray(ink, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def example_digit_png(digit: int) -> bytes:
    """A real held-out MNIST digit (shipped with the page), upscaled like a drawing, as PNG."""
    raw = json.loads(resources.files("mnist_frontend").joinpath("example_digits.json").read_text())
    pixels = np.asarray(raw["images"][str(digit)], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((280, 280), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def enlarged(input_image: list[list[float]], size: int = 196) -> Image.Image:
    """The 28x28 the model saw, scaled up with hard pixel edges so each pixel stays visible."""
    pixels = (np.clip(np.asarray(input_image, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
