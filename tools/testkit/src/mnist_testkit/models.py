"""The trained model every suite serves: ``MODEL_DIR``, else the repository's ``models/``."""

from __future__ import annotations

import os
from pathlib import Path

from mnist_testkit.processes import REPO_ROOT


def trained_model_dir() -> Path:
    """The model store with a ``CURRENT`` version; AssertionError naming the fix otherwise."""
    path = Path(os.environ.get("MODEL_DIR", REPO_ROOT / "models"))
    if not (path / "CURRENT").is_file():
        raise AssertionError(
            f"no trained model in {path}: run `make train` (or `make test`, which trains one when missing)"
        )
    return path
