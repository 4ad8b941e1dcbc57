"""Real held-out MNIST digits, from the one file each set is kept in.

One per class: the drawing page ships them (its "try a real MNIST test digit" examples), so they
live in its package; the test suites, the benchmark and the deploy smoke test
(``scripts/digit_request.py``) read that same file. All 1,000: training's default test split,
which serving carries to run each model version on before it serves (written by
``python -m mnist_training.heldout_digits``; a training test keeps it equal to the split).
Values are 0..255, white digit on black, 28 rows of 28.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mnist_testkit.processes import REPO_ROOT

if TYPE_CHECKING:
    import numpy as np

DIGITS_FILE = REPO_ROOT / "frontend" / "src" / "mnist_frontend" / "example_digits.json"
TEST_SPLIT_FILE = REPO_ROOT / "backend" / "src" / "mnist_backend" / "data" / "heldout_digits.npz"


def load_digits() -> dict[int, list[list[int]]]:
    """``{digit: 28 rows of 28 values 0..255}`` for the digits 0 to 9."""
    images = json.loads(DIGITS_FILE.read_text())["images"]
    return {int(digit): rows for digit, rows in images.items()}


def load_test_split() -> tuple[np.ndarray, np.ndarray]:
    """Training's held-out test split: uint8 images ``[1000, 28, 28]`` and their int64 labels."""
    import numpy as np  # the suites that read it have NumPy; the kit itself does not need it

    with np.load(TEST_SPLIT_FILE) as data:
        return data["images"], data["labels"]
