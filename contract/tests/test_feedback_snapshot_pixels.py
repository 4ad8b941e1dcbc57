"""The feedback snapshot's pixel bytes: the fast conversion every answer's token uses gives
exactly ``as_uint8``'s bytes (what duplicates and the held-out split are keyed on)."""

from __future__ import annotations

import numpy as np

from mnist_contract.feedback_snapshot import as_uint8, unit_floats_as_uint8


def test_unit_floats_give_as_uint8s_bytes_at_every_level_and_halfway_between():
    levels = np.arange(256, dtype=np.float64)
    # Each level, the halfway points where rounding decides (ties go to the even level in both),
    # and the nearest float32 on either side of each.
    values = np.concatenate([levels, levels[:-1] + 0.5]) / 255.0
    values = values.astype(np.float32)
    around = np.concatenate([values, np.nextafter(values, np.float32(0)), np.nextafter(values, np.float32(1))])
    around = np.clip(around, 0, 1).astype(np.float32)
    padded = np.resize(around, (len(around) // 784 + 1) * 784).reshape(-1, 28, 28)
    for image in padded:
        assert unit_floats_as_uint8(image).tobytes() == as_uint8(image).tobytes()


def test_random_drawings_give_the_same_bytes():
    rng = np.random.default_rng(7)
    for _ in range(200):
        image = rng.random((28, 28), dtype=np.float32) * (rng.random((28, 28)) < 0.2)
        assert unit_floats_as_uint8(image).tobytes() == as_uint8(image).tobytes()
