"""Drawings as a canvas makes them, for the tests of the canvas preprocessing and the API
(Pillow: the suites that draw have it; the kit itself does not need it)."""

from __future__ import annotations

from PIL import Image, ImageDraw


def draw_stroke_image(
    size: int = 280, box: tuple[int, int, int, int] = (10, 10, 60, 90), width: int = 12
) -> Image.Image:
    """A hand-drawn-looking '1'-ish stroke inside ``box`` on a black canvas."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    draw.line([(x0 + (x1 - x0) // 2, y0), (x0 + (x1 - x0) // 2, y1)], fill=255, width=width)
    draw.line([(x0, y0 + 10), (x0 + (x1 - x0) // 2, y0)], fill=255, width=width)
    return image
