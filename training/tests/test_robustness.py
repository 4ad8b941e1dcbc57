"""The robustness suite builds what its names say, on real test digits, with labels untouched."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mnist_training.canvas_contract import ink_from_upload, to_mnist
from mnist_training.robustness import VARIANTS, build_suite, low_resolution, rotated, slanted


@pytest.fixture(scope="module")
def digits(small_splits) -> np.ndarray:
    return small_splits[2]["images"][:40]


@pytest.fixture(scope="module")
def suite(digits) -> dict[str, np.ndarray]:
    return build_suite(digits, seed=7)


def ink_area(images: np.ndarray) -> np.ndarray:
    return (images > 127).sum(axis=(1, 2))


def centre_of_mass(image: np.ndarray) -> np.ndarray:
    return np.asarray(ndimage.center_of_mass(image.astype(np.float64)))


def test_every_variant_keeps_shape_dtype_and_order(digits, suite):
    assert list(suite) == list(VARIANTS)
    for name, images in suite.items():
        assert images.shape == digits.shape and images.dtype == np.uint8, name
        # Same digit at the same index: each image still overlaps its own original most.
        assert (images.reshape(len(digits), -1) > 0).any(axis=1).all(), f"{name} blanked a digit"


def test_the_suite_is_reproducible_from_its_seed(digits, suite):
    again = build_suite(digits, seed=7)
    assert all(np.array_equal(suite[name], again[name]) for name in suite)
    other = build_suite(digits, seed=8)
    assert not np.array_equal(suite["inverted_upload"], other["inverted_upload"])  # paper and noise differ


def test_thick_strokes_are_wider_and_thin_strokes_narrower(digits, suite):
    assert (ink_area(suite["thick"]) > ink_area(digits)).all()
    assert (ink_area(suite["thin"]) <= ink_area(digits)).all()
    assert ink_area(suite["thin"]).sum() < 0.8 * ink_area(digits).sum()


def test_blur_spreads_ink_without_losing_it(digits, suite):
    blurred, original = suite["blurred"].astype(np.int64), digits.astype(np.int64)
    assert (blurred.max(axis=(1, 2)) < original.max(axis=(1, 2))).all()
    assert ((blurred > 0).sum() > (original > 0).sum()) and abs(blurred.sum() / original.sum() - 1) < 0.02


def test_low_resolution_keeps_only_8x8_information(digits):
    """Every image of the variant is the upsampling of some 8x8 image: it lies in the 64-dimensional
    span of the upsampled 8x8 unit images (up to uint8 rounding), which no full-resolution digit does."""
    basis = np.stack(
        [
            np.asarray(
                Image.fromarray(unit.reshape(8, 8)).resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float64
            ).ravel()
            for unit in np.eye(64, dtype=np.float32)
        ],
        axis=1,
    )

    def residual(images: np.ndarray) -> np.ndarray:
        flat = images.reshape(len(images), -1).T.astype(np.float64)
        coefficients = np.linalg.lstsq(basis, flat, rcond=None)[0]
        return np.abs(basis @ coefficients - flat).max(axis=0)

    assert residual(low_resolution(digits, np.random.default_rng(0))).max() <= 1.5  # Pillow's 8-bit rounding
    assert residual(digits).min() > 20


def test_rotation_alternates_by_twenty_degrees(digits):
    """Turning each image back by 20 degrees one way restores it; the way alternates."""
    turned = rotated(digits, np.random.default_rng(0)).astype(np.float64)
    ways = []
    for image, original in zip(turned[:8], digits[:8].astype(np.float64), strict=True):
        match = {
            way: np.corrcoef(ndimage.rotate(image, 20 * way, reshape=False, order=1).ravel(), original.ravel())[0, 1]
            for way in (1, -1)
        }
        best = max(match, key=match.__getitem__)
        assert match[best] > 0.9 and match[-best] < match[best] - 0.1
        ways.append(best)
    assert ways == [ways[0], -ways[0]] * 4


def test_slant_leans_the_digits_right_and_left_alternately(digits):
    def lean(image: np.ndarray) -> float:
        rows, cols = np.nonzero(image > 127)
        return float(np.cov(rows, cols)[0, 1])

    leaned = slanted(digits, np.random.default_rng(0))
    changes = np.array([lean(after) - lean(before) for before, after in zip(digits, leaned, strict=True)])
    # Rows grow downwards: a top leaning right lowers the row/column covariance.
    assert (changes[0::2] < 0).all() and (changes[1::2] > 0).all()


@pytest.mark.parametrize("variant", ["small_off_centre", "inverted_upload"])
def test_canvas_variants_come_out_as_the_backend_lays_digits_out(suite, variant):
    """Through the canvas contract: ink fits a 20x20 box, centre of mass at the image centre."""
    for image in suite[variant]:
        rows, cols = np.nonzero(image > 25)
        assert np.ptp(rows) < 21 and np.ptp(cols) < 21
        assert np.abs(centre_of_mass(image) - 13.5).max() <= 1.0


def test_canvas_contract_finds_a_small_digit_anywhere_and_dark_ink_on_paper(digits):
    digit = digits[0]
    reference = to_mnist(digit)
    page = np.zeros((280, 280), dtype=np.uint8)
    page[200:228, 10:38] = digit  # bottom-left corner of the page
    assert np.abs(to_mnist(page).astype(int) - reference.astype(int)).max() <= 2
    paper = 255 - page  # dark ink on white paper
    assert np.array_equal(ink_from_upload(paper), page)
    assert np.array_equal(to_mnist(ink_from_upload(paper)), to_mnist(page))
    with pytest.raises(ValueError, match="empty"):
        to_mnist(np.full((50, 50), 12, dtype=np.uint8))
