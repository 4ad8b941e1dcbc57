"""The held-out digits other suites judge the serving preprocessing on are training's test split."""

from __future__ import annotations

import numpy as np

from mnist_training.heldout_digits import HELDOUT_FILE, default_test_split


def test_the_shared_heldout_file_is_the_default_test_split():
    split = default_test_split()
    with np.load(HELDOUT_FILE) as stored:
        same = np.array_equal(stored["images"], split["images"]) and np.array_equal(stored["labels"], split["labels"])
    regenerate = "cd training && python -m mnist_training.heldout_digits"
    assert same, f"{HELDOUT_FILE} is not the default test split: run `{regenerate}`"
    assert np.bincount(split["labels"], minlength=10).tolist() == [100] * 10
