"""The four input statistics and the summary training stores in every version's metadata."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_contract.input_statistics import STATISTICS, SUMMARY_QUANTITIES, measure, summarize


def test_a_centred_block_and_a_blank_image_measure_as_defined():
    block = np.zeros((28, 28), dtype=np.float32)
    block[4:24, 6:22] = 1.0  # 20 x 16 pixels, centred
    values = measure(np.stack([block, np.zeros_like(block)]))
    assert values["ink_share"][0] == pytest.approx(20 * 16 / 784)
    assert values["mean_intensity"][0] == pytest.approx(20 * 16 / 784)
    assert values["bbox_size_pixels"][0] == 20
    assert values["centre_offset_pixels"][0] == pytest.approx(0.0)
    assert [values[name][1] for name in STATISTICS] == [0, 0, 0, 0]  # blank: zeros, never NaN


def test_pixels_at_the_ink_threshold_are_not_ink():
    faint = np.full((1, 28, 28), 0.1, dtype=np.float64)
    assert measure(faint)["ink_share"][0] == 0
    assert measure(faint + 1e-6)["ink_share"][0] == 1


def test_the_offset_is_the_distance_of_the_centre_of_mass_from_the_image_centre():
    dot = np.zeros((1, 28, 28), dtype=np.float32)
    dot[0, 13, 25] = 1.0  # row 13, column 25: 0.5 and 11.5 pixels from the centre (13.5, 13.5)
    assert measure(dot)["centre_offset_pixels"][0] == pytest.approx(np.hypot(0.5, 11.5))


def test_the_summary_is_what_the_metadata_schema_expects_and_reads_uint8_images():
    rng = np.random.default_rng(0)
    images = (rng.random((50, 28, 28)) > 0.8).astype(np.uint8) * 255
    summary = summarize(images)
    assert list(summary) == list(STATISTICS)
    for name, quantities in summary.items():
        assert tuple(quantities) == SUMMARY_QUANTITIES, name
        assert quantities["p01"] <= quantities["p50"] <= quantities["p99"], name
    assert summary["ink_share"]["mean"] == pytest.approx(measure(images / 255.0)["ink_share"].mean(), abs=1e-6)
