"""Real held-out MNIST digits, one per class, from the one file the hub keeps them in.

The drawing page ships them (its "try a real MNIST test digit" examples), so they live in its
package; the test suites, the benchmark and the deploy smoke test (``scripts/digit_request.py``)
read that same file. Values are 0..255, white digit on black, 28 rows of 28.
"""

from __future__ import annotations

import json

from mnist_testkit.processes import REPO_ROOT

DIGITS_FILE = REPO_ROOT / "frontend" / "src" / "mnist_frontend" / "example_digits.json"


def load_digits() -> dict[int, list[list[int]]]:
    """``{digit: 28 rows of 28 values 0..255}`` for the digits 0 to 9."""
    images = json.loads(DIGITS_FILE.read_text())["images"]
    return {int(digit): rows for digit, rows in images.items()}
