"""The robustness suite builds what its names say, on real test digits, with labels untouched."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mnist_training.as_served import as_served
from mnist_training.handwriting_styles import STYLES
from mnist_training.robustness import SUITE, VARIANTS, build_suite, low_resolution, rotated, slanted


@pytest.fixture(scope="module")
def digits(small_splits) -> np.ndarray:
    return small_splits[2]["images"][:40]


@pytest.fixture(scope="module")
def labels(small_splits) -> np.ndarray:
    return small_splits[2]["labels"][:40]


@pytest.fixture(scope="module")
def built(digits, labels) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return build_suite(digits, labels, seed=7)


@pytest.fixture(scope="module")
def suite(built) -> dict[str, np.ndarray]:
    """The variants of all 40 digits (the styles apart)."""
    return {name: built[name][0] for name in VARIANTS}


def ink_area(images: np.ndarray) -> np.ndarray:
    return (images > 127).sum(axis=(1, 2))


def centre_of_mass(image: np.ndarray) -> np.ndarray:
    return np.asarray(ndimage.center_of_mass(image.astype(np.float64)))


def test_every_variant_keeps_shape_dtype_and_order(digits, labels, built, suite):
    assert list(built) == list(SUITE) and SUITE[: len(VARIANTS)] == tuple(VARIANTS)
    for name in VARIANTS:
        assert built[name][1] is labels, f"{name} changed the labels"
    for name, images in suite.items():
        assert images.shape == digits.shape and images.dtype == np.uint8, name
        # Same digit at the same index: each image still overlaps its own original most.
        assert (images.reshape(len(digits), -1) > 0).any(axis=1).all(), f"{name} blanked a digit"


def test_the_suite_is_reproducible_from_its_seed(digits, labels, built):
    again = build_suite(digits, labels, seed=7)
    assert all(np.array_equal(built[name][0], again[name][0]) for name in built)
    other = build_suite(digits, labels, seed=8)
    for name in ("inverted_upload", "tight_crop_pencil", "one_flag"):  # paper, noise and strokes differ
        assert not np.array_equal(built[name][0], other[name][0]), name


def test_each_style_is_measured_on_the_digits_it_is_written_for(digits, labels, built):
    for name, (digit, _) in STYLES.items():
        images, style_labels = built[name]
        assert (style_labels == digit).all() and len(style_labels) == (labels == digit).sum() > 0, name
        assert images.shape == (len(style_labels), 28, 28) and images.dtype == np.uint8
        # The added strokes: at least a few pixels of ink where the plain digit, laid out the same
        # way, has none (or the other way round, where the wider box shrank the digit).
        plain = np.stack([as_served(image) for image in digits[labels == digit]])
        changed = (np.abs(images.astype(int) - plain.astype(int)) > 127).sum(axis=(1, 2))
        assert (changed >= 5).all(), f"{name}: {changed}"


def test_a_style_with_no_digit_of_its_own_is_left_out(digits, labels):
    without_ones = labels != 1
    assert not {"one_flag", "one_flag_base"} & set(build_suite(digits[without_ones], labels[without_ones], seed=7))


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


@pytest.mark.parametrize(
    "variant", ["small_off_centre", "inverted_upload", "tight_crop", "tight_crop_pencil", "thick_marker_edge"]
)
def test_canvas_variants_come_out_as_the_backend_lays_digits_out(suite, variant):
    """Through the canvas contract: ink fits a 20x20 box, centre of mass at the image centre."""
    for image in suite[variant]:
        rows, cols = np.nonzero(image > 25)
        assert np.ptp(rows) < 21 and np.ptp(cols) < 21
        assert np.abs(centre_of_mass(image) - 13.5).max() <= 1.0


def test_served_preprocessing_finds_a_small_digit_anywhere_and_dark_ink_on_paper(digits):
    digit = digits[0]
    reference = as_served(digit)
    page = np.zeros((280, 280), dtype=np.uint8)
    page[200:228, 10:38] = digit  # bottom-left corner of the page
    assert np.abs(as_served(page).astype(int) - reference.astype(int)).max() <= 2
    assert np.array_equal(as_served(255 - page), as_served(page))  # dark ink on white paper
    # What serving refuses as empty comes back black: the evaluation counts it as an error.
    assert not as_served(np.full((50, 50), 12, dtype=np.uint8)).any()


def test_a_tight_crop_touches_every_edge_and_is_read_like_one_with_a_margin(digits):
    """The uploads the tight-crop variants make have ink on all four edges; the contract still
    finds the paper (not the ink) and lays them out as it lays out the same digit with room."""
    from mnist_training.robustness import _tight_crop

    for image in digits:
        crop = _tight_crop(image)
        assert max(crop.shape) == 280
        assert all(edge.max() > 0 for edge in (crop[0], crop[-1], crop[:, 0], crop[:, -1]))
        roomy = np.zeros((crop.shape[0] + 40, crop.shape[1] + 40), dtype=np.uint8)
        roomy[20:-20, 20:-20] = crop
        for upload, reference in ((crop, roomy), (255 - crop, 255 - roomy)):
            read, expected = as_served(upload), as_served(reference)
            assert np.abs(read.astype(int) - expected.astype(int)).mean() < 3


def test_the_marker_variant_puts_more_ink_on_the_edges_than_the_tight_crop(digits):
    from mnist_training.robustness import _tight_crop

    def edge_ink(image: np.ndarray) -> float:
        return float(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).mean())

    marker = [ndimage.grey_dilation(_tight_crop(image), size=(14, 14)) for image in digits]
    assert all(edge_ink(m) > edge_ink(_tight_crop(image)) for m, image in zip(marker, digits, strict=True))
