"""Training's robustness suite reproduces this service's canvas preprocessing in its own
module (``training/src/mnist_training/canvas_contract.py``). This service owns the steps; the
two must turn the same drawing or upload into the same 28x28 digit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnist_backend.preprocessing import preprocess_canvas_image
from tests.conftest import load_training_module


@pytest.fixture(scope="module")
def training_contract():
    return load_training_module("canvas_contract.py")


def drawings(digit: np.ndarray) -> dict[str, np.ndarray]:
    """One MNIST digit as the 8-bit grayscale images clients send."""
    large = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR))
    corner = np.zeros((280, 280), dtype=np.uint8)
    corner[10:100, 170:260] = np.asarray(Image.fromarray(digit).resize((90, 90), Image.Resampling.BILINEAR))
    # A photo of dark ink on grey, uneven paper: inverted, with the paper's level taken off.
    rng = np.random.default_rng(int(digit.sum()))
    paper = 215 + rng.integers(-12, 12, size=(280, 280))
    photo = np.clip(paper - large.astype(np.int32) * 0.8, 0, 255).astype(np.uint8)
    # Cropped tight to the ink (strokes on every edge): white on black, dark pencil on grey paper.
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    crop = Image.fromarray(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    tight = np.asarray(crop.resize((crop.width * 10, crop.height * 10), Image.Resampling.BILINEAR))
    pencil = np.clip(225 + rng.normal(0, 3, tight.shape) - tight * 0.3, 0, 255).astype(np.uint8)
    return {
        "canvas": large,
        "small in a corner": corner,
        "dark on grey paper": photo,
        "tight crop": tight,
        "tight crop in pencil": pencil,
    }


def test_training_reproduces_the_services_canvas_steps(mnist_digits, training_contract):
    compared = 0
    for digit, image in mnist_digits.items():
        for name, gray in drawings(image).items():
            served = preprocess_canvas_image(Image.fromarray(gray))
            reproduced = training_contract.to_mnist(training_contract.ink_from_upload(gray)) / 255
            # Training keeps 8-bit digits: agreement to within its rounding, same placement.
            difference = np.abs(served - reproduced).max()
            assert difference <= 0.5 / 255 + 1e-6, f"digit {digit}, {name}: differs by {difference * 255:.2f}/255"
            compared += 1
    assert compared == 50
