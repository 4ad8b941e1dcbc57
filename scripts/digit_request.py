#!/usr/bin/env python3
"""The predict request the smoke, stack and load tests send: a real held-out MNIST digit.

``python3 scripts/digit_request.py [DIGIT]`` prints the JSON body; ``request_body()`` returns it.
The digits file stores 0..255; the API takes 0..1 (the MNIST convention).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The hub's one copy of the held-out digits: the drawing page ships them, everything else reads them.
DIGITS = Path(__file__).resolve().parent.parent / "frontend" / "src" / "mnist_frontend" / "example_digits.json"


def request_body(digit: int = 7) -> bytes:
    rows = json.loads(DIGITS.read_text())["images"][str(digit)]
    return json.dumps({"image": [[value / 255 for value in row] for row in rows]}).encode()


if __name__ == "__main__":
    sys.stdout.buffer.write(request_body(int(sys.argv[1]) if len(sys.argv) > 1 else 7) + b"\n")
