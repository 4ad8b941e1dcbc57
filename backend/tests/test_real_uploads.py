"""Uploads as people make them: a digit cropped tight to its ink, strokes touching every edge,
in either polarity, on clean or grey paper. Judged on training's 1,000 held-out test digits
through the serving preprocessing and the served model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnist_backend.model import LoadedModel, load_model_version
from mnist_contract.canvas import InvalidImageError, paper_level, preprocess_canvas_image
from mnist_testkit.digits import load_test_split

UPLOAD_SIDE = 280
# Any upload whose ink differs from its paper by at least this share of the full range is read.
VISIBLE_CONTRAST = 0.2


@pytest.fixture(scope="module")
def test_split() -> tuple[np.ndarray, np.ndarray]:
    return load_test_split()


@pytest.fixture(scope="module")
def served_model(model_dir) -> LoadedModel:
    return load_model_version(model_dir)


def tight_crop(digit: np.ndarray, margin: int = 0) -> np.ndarray:
    """The digit cropped to the box of every inked pixel (plus ``margin`` blank pixels), enlarged
    with bilinear resampling until its longer side is 280 pixels."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    crop = np.pad(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], margin)
    scale = UPLOAD_SIDE / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))


def read_all(model: LoadedModel, uploads: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Predicted digits (-1 where refused) and how many uploads were refused as empty."""
    pixels, refused = [], []
    for upload in uploads:
        try:
            pixels.append(preprocess_canvas_image(Image.fromarray(upload)))
            refused.append(False)
        except InvalidImageError:
            pixels.append(np.zeros((28, 28), dtype=np.float32))
            refused.append(True)
    predictions = model.predict_proba(np.stack(pixels)).argmax(axis=1)
    return np.where(refused, -1, predictions), int(sum(refused))


def test_a_tight_crop_reads_as_the_same_crop_with_a_margin(test_split, served_model):
    """Every held-out digit, white on black and black on white: the crop with strokes touching
    the edges is never refused, and reads as the crop with a 4-pixel margin in >= 99 % of cases."""
    images, labels = test_split
    tight = [tight_crop(image) for image in images]
    margin = [tight_crop(image, margin=4) for image in images]
    for name, flip in (("white on black", False), ("black on white", True)):
        tight_read, tight_refused = read_all(served_model, [255 - u if flip else u for u in tight])
        margin_read, _ = read_all(served_model, [255 - u if flip else u for u in margin])
        agreement = (tight_read == margin_read).mean()
        print(
            f"{name}: {tight_refused} of {len(images)} tight crops refused, agreement {agreement:.4f}, "
            f"accuracy tight {(tight_read == labels).mean():.4f} / margin {(margin_read == labels).mean():.4f}"
        )
        assert tight_refused == 0, f"{name}: {tight_refused} tight crops refused as empty"
        assert agreement >= 0.99, f"{name}: tight and margin crops agree on {agreement:.4f} of the digits"


def test_no_upload_with_visible_ink_is_refused_as_empty(test_split):
    """Tight crops at the lowest visible contrast, on paper of any level (with sensor noise)
    and in either polarity: each is read, none is called empty."""
    images, _ = test_split
    rng = np.random.default_rng(11)
    contrast = VISIBLE_CONTRAST * 255
    refused = []
    for index, image in enumerate(images):
        ink = tight_crop(image).astype(np.float64) / 255
        paper = rng.uniform(0, 255 - contrast)
        upload = paper + ink * contrast + rng.normal(0, 2, ink.shape)
        if index % 2:
            upload = 255 - upload
        try:
            preprocess_canvas_image(Image.fromarray(np.clip(np.round(upload), 0, 255).astype(np.uint8)))
        except InvalidImageError:
            refused.append(index)
    assert not refused, f"{len(refused)} uploads with visible ink refused as empty, e.g. test digit {refused[0]}"


def test_a_uniform_image_is_still_empty_whatever_its_level():
    for level in (0, 60, 128, 200, 255):
        with pytest.raises(InvalidImageError, match="empty"):
            preprocess_canvas_image(Image.new("L", (120, 280), level))


def test_ink_on_the_border_does_not_raise_the_paper_level():
    """A third of the border is ink (255): the level is the paper's, not the ink's."""
    rng = np.random.default_rng(5)
    paper = np.clip(rng.normal(40, 5, 900), 0, 255).astype(np.uint8)
    border = np.concatenate([paper, np.full(450, 255, dtype=np.uint8)])
    level = paper_level(border)
    assert 45 <= level <= 65  # about three standard deviations above the paper's mean
    assert paper_level(paper) == int(np.sort(paper)[len(paper) - 1 - len(paper) * 5 // 100])  # no ink: as before
    assert paper_level(np.zeros(1000, dtype=np.uint8)) == 0


def test_a_photo_of_a_tight_crop_on_grey_paper_reads_like_the_clean_crop(test_split, served_model):
    """Dark pencil on grey, noisy paper, cropped tight: the paper is taken off without the ink."""
    images, labels = test_split
    rng = np.random.default_rng(2)
    chosen = rng.choice(len(images), size=100, replace=False)
    photos, clean = [], []
    for index in chosen:
        ink = tight_crop(images[index])
        clean.append(ink)
        paper = rng.uniform(190, 235)
        photo = paper - ink.astype(np.float64) / 255 * rng.uniform(60, 110) + rng.normal(0, 4, ink.shape)
        photos.append(np.clip(photo, 0, 255).astype(np.uint8))
    photo_read, refused = read_all(served_model, photos)
    clean_read, _ = read_all(served_model, clean)
    assert refused == 0
    assert (photo_read == clean_read).mean() >= 0.97
    assert (photo_read == labels[chosen]).mean() >= 0.95
