"""The robustness suite: the held-out test digits as real people's inputs look, one named
variant each, so a run reports what clean MNIST accuracy hides (a thick "1", a blurry "4",
a small digit drawn in a corner, a photo of dark ink on paper).

Every variant maps uint8 ``[N, 28, 28]`` test images (white on black) to images of the same
shape with the labels unchanged; randomness comes only from the seeded ``rng``. The last two
go through the backend's canvas preprocessing (``canvas_contract``), as such inputs do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from mnist_training.canvas_contract import ink_from_upload, to_mnist

Variant = Callable[[np.ndarray, np.random.Generator], np.ndarray]

LOW_RESOLUTION_SIDE = 8
ROTATION_DEGREES = 20.0
SHEAR = 0.35  # horizontal shift per row: about 19 degrees of slant
BLUR_SIGMA = 1.0


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def _alternating(count: int) -> np.ndarray:
    """+1, -1, +1, ...: half of the digits go one way, half the other."""
    return np.where(np.arange(count) % 2 == 0, 1.0, -1.0)


def thick(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes dilated by 1 or 2 pixels (a felt pen; the page's widest brush)."""
    grown = [ndimage.grey_dilation(image, size=(3, 3) if rng.random() < 0.5 else (5, 5)) for image in images]
    return np.stack(grown).astype(np.uint8)


def thin(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes eroded by one pixel (a fine pen)."""
    return ndimage.grey_erosion(images, size=(1, 2, 2)).astype(np.uint8)


def blurred(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian blur (sigma 1 px): an out-of-focus photo or a soft brush."""
    return _to_uint8(ndimage.gaussian_filter(images.astype(np.float32), sigma=(0, BLUR_SIGMA, BLUR_SIGMA)))


def low_resolution(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down to 8x8 (area average) and back up to 28x28 (bilinear): a tiny thumbnail or scan."""
    side = (LOW_RESOLUTION_SIDE, LOW_RESOLUTION_SIDE)
    return np.stack(
        [
            np.asarray(
                Image.fromarray(image).resize(side, Image.Resampling.BOX).resize((28, 28), Image.Resampling.BILINEAR)
            )
            for image in images
        ]
    )


def _affine_about_centre(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply ``matrix`` (output -> input coordinates, row/col) about the image centre."""
    centre = (np.asarray(image.shape) - 1) / 2
    offset = centre - matrix @ centre
    return ndimage.affine_transform(image.astype(np.float32), matrix, offset=offset, order=1, cval=0.0)


def rotated(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotated by +20 or -20 degrees, alternately."""
    out = []
    for image, sign in zip(images, _alternating(len(images)), strict=True):
        angle = np.deg2rad(ROTATION_DEGREES * sign)
        matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        out.append(_affine_about_centre(image, matrix))
    return _to_uint8(np.stack(out))


def slanted(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sheared horizontally (handwriting leaning right or left), alternately."""
    out = [
        _affine_about_centre(image, np.array([[1.0, 0.0], [SHEAR * sign, 1.0]]))
        for image, sign in zip(images, _alternating(len(images)), strict=True)
    ]
    return _to_uint8(np.stack(out))


def small_off_centre(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drawn small (about 1/6 of the page's 280x280 canvas) near a corner, then preprocessed
    the way the backend preprocesses a canvas drawing."""
    out = []
    for image in images:
        digit = np.asarray(Image.fromarray(image).resize((48, 48), Image.Resampling.BILINEAR))
        canvas = np.zeros((280, 280), dtype=np.uint8)
        top, left = (int(rng.integers(0, 40)) + corner for corner in rng.choice([0, 190], size=2))
        canvas[top : top + 48, left : left + 48] = digit
        out.append(to_mnist(canvas))
    return np.stack(out)


def inverted_upload(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A photographed or scanned digit: dark ink on grey paper with sensor noise, 112x112,
    then preprocessed the way the backend preprocesses an uploaded image."""
    out = []
    for image in images:
        ink = np.asarray(Image.fromarray(image).resize((112, 112), Image.Resampling.BILINEAR), dtype=np.float32) / 255
        paper = rng.uniform(190, 240)
        photo = paper - ink * (paper - rng.uniform(20, 70)) + rng.normal(0, 6, ink.shape)
        out.append(to_mnist(ink_from_upload(_to_uint8(photo))))
    return np.stack(out)


VARIANTS: dict[str, Variant] = {
    "thick": thick,
    "thin": thin,
    "blurred": blurred,
    "low_resolution": low_resolution,
    "rotated": rotated,
    "slanted": slanted,
    "small_off_centre": small_off_centre,
    "inverted_upload": inverted_upload,
}


def build_suite(images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Every variant of ``images``, each from its own seeded stream (adding one changes no other)."""
    return {
        name: variant(images, np.random.default_rng([seed, index]))
        for index, (name, variant) in enumerate(VARIANTS.items())
    }
