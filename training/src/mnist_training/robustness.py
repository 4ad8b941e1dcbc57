"""The robustness suite: the held-out test digits as real people's inputs look, one named
variant each, so a run reports what clean MNIST accuracy hides (a thick "1", a blurry "4",
a small digit drawn in a corner, a photo of dark ink on paper).

Every variant maps uint8 ``[N, 28, 28]`` test images (white on black) to images of the same
shape with the labels unchanged; randomness comes only from the seeded ``rng``. The uploads
(a small digit on a page, a photo, a tight crop) go through the canvas preprocessing serving
runs (``as_served``: the model contract's code), as such inputs do. The handwriting styles (``handwriting_styles``) are
measured on the test digits they are written for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from mnist_training.as_served import as_served
from mnist_training.handwriting_styles import STYLES

Variant = Callable[[np.ndarray, np.random.Generator], np.ndarray]

LOW_RESOLUTION_SIDE = 8
ROTATION_DEGREES = 20.0
SHEAR = 0.35  # horizontal shift per row: about 19 degrees of slant
BLUR_SIGMA = 1.0
UPLOAD_SIDE = 280  # a tight crop is enlarged until its longer side is this long


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
        out.append(as_served(canvas))
    return np.stack(out)


def inverted_upload(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A photographed or scanned digit: dark ink on grey paper with sensor noise, 112x112,
    then preprocessed the way the backend preprocesses an uploaded image."""
    out = []
    for image in images:
        ink = np.asarray(Image.fromarray(image).resize((112, 112), Image.Resampling.BILINEAR), dtype=np.float32) / 255
        paper = rng.uniform(190, 240)
        photo = paper - ink * (paper - rng.uniform(20, 70)) + rng.normal(0, 6, ink.shape)
        out.append(as_served(_to_uint8(photo)))
    return np.stack(out)


def _tight_crop(image: np.ndarray) -> np.ndarray:
    """Cropped to the box of every inked pixel, enlarged (bilinear) to a 280-pixel longer side:
    the strokes touch all four edges."""
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    crop = Image.fromarray(np.ascontiguousarray(image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]))
    scale = UPLOAD_SIDE / max(crop.size)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    return np.asarray(crop.resize(size, Image.Resampling.BILINEAR))


def _as_upload(ink: np.ndarray, white_on_black: bool) -> np.ndarray:
    """8-bit ink as the uploaded file has it, then serving's preprocessing (``as_served``)."""
    return as_served(ink if white_on_black else 255 - ink)


def tight_crop(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cropped to the ink's box and enlarged, white on black and black on white alternately."""
    signs = _alternating(len(images))
    return np.stack([_as_upload(_tight_crop(image), sign > 0) for image, sign in zip(images, signs, strict=True)])


def tight_crop_pencil(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tight crop of a pencil digit: grey, low-contrast strokes on light, noisy paper."""
    out = []
    for image in images:
        ink = _tight_crop(image).astype(np.float32) / 255
        paper, contrast = rng.uniform(200, 240), rng.uniform(50, 100)
        photo = paper - ink * contrast + rng.normal(0, 3, ink.shape)
        out.append(_as_upload(255 - _to_uint8(photo), white_on_black=False))
    return np.stack(out)


def thick_marker_edge(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tight crop written with a marker: strokes dilated by 5-8 % of the image, cut off where
    they reach the edges, in both polarities alternately."""
    out = []
    for image, sign in zip(images, _alternating(len(images)), strict=True):
        ink = _tight_crop(image)
        width = max(3, round(max(ink.shape) * rng.uniform(0.05, 0.08)))
        out.append(_as_upload(ndimage.grey_dilation(ink, size=(width, width)), sign > 0))
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
    "tight_crop": tight_crop,
    "tight_crop_pencil": tight_crop_pencil,
    "thick_marker_edge": thick_marker_edge,
}
# Every figure the suite reports: the variants above, then the handwriting styles.
SUITE = (*VARIANTS, *STYLES)


def build_suite(images: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (images, labels)}``: every variant of all ``images``, then every handwriting style
    on the images of its digit (left out when there are none). Each draws from its own seeded
    stream, so adding one changes no other."""
    suite = {
        name: (variant(images, np.random.default_rng([seed, index])), labels)
        for index, (name, variant) in enumerate(VARIANTS.items())
    }
    for index, (name, (digit, style)) in enumerate(STYLES.items(), start=len(VARIANTS)):
        rng = np.random.default_rng([seed, index])
        chosen = images[labels == digit]
        if len(chosen):
            suite[name] = (np.stack([style(image, rng) for image in chosen]), labels[labels == digit])
    return suite
