"""Write training's held-out test split to the file serving carries.

The backend runs every model version on real digits it never trained on before the version
serves (``mnist_backend.model_behaviour``), and its property tests judge the serving
preprocessing on them; neither can load MNIST through training. This writes the default data
settings' test split (1,000 images, 100 per digit) as a compressed NumPy file into the
backend's package; a training test fails when the file and the split differ, naming this
command:

    cd training && python -m mnist_training.heldout_digits
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mnist_training.parameters import DataParams
from mnist_training.pipelines.data.nodes import load_mnist, stratified_split

HELDOUT_FILE = Path(__file__).resolve().parents[3] / "backend/src/mnist_backend/data/heldout_digits.npz"


def default_test_split() -> dict[str, np.ndarray]:
    """The test split of a default training run: uint8 ``images [N, 28, 28]``, int64 ``labels``."""
    params = DataParams()
    return stratified_split(load_mnist(params), params)[2]


def write_heldout_file(path: Path = HELDOUT_FILE) -> Path:
    split = default_test_split()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=split["images"], labels=split["labels"])
    return path


if __name__ == "__main__":
    written = write_heldout_file(Path(sys.argv[1]) if len(sys.argv) > 1 else HELDOUT_FILE)
    print(f"wrote the default test split to {written}")
