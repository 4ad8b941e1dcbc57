"""An upload-like image as serving turns it into the model's input: through the model
contract's canvas preprocessing (``mnist_contract.canvas``), the same code the backend runs, so
the robustness suite's figures are the served code's figures."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnist_contract.canvas import MNIST_SIDE, InvalidImageError, as_8bit, preprocess_canvas_image


def as_served(upload: np.ndarray) -> np.ndarray:
    """An 8-bit grayscale image of any size (any polarity, any background) -> uint8 ``[28, 28]``,
    MNIST's layout. An image serving would refuse as empty comes back black, which an
    evaluation counts as an error."""
    try:
        return as_8bit(preprocess_canvas_image(Image.fromarray(np.ascontiguousarray(upload, dtype=np.uint8))))
    except InvalidImageError:
        return np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.uint8)
