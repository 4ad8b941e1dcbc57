"""Input drift: the contract's statistics of what the service serves, and what it exports
(histograms, inputs outside the training range, the version's reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mnist_backend.input_drift import BUCKETS, TOLERANCE, InputStatistics
from mnist_contract.input_statistics import STATISTICS, measure, summarize
from tests.api.test_metrics import sample
from tests.api.test_predict import as_floats


def tiny_in_corner(digit: np.ndarray) -> np.ndarray:
    """The digit shrunk to 7x7 in the top-left corner: what a client that skips centring sends."""
    small = digit.reshape(7, 4, 7, 4).mean(axis=(1, 3))
    image = np.zeros((28, 28), dtype=np.float32)
    image[1:8, 1:8] = small
    return image


def blob() -> np.ndarray:
    image = np.zeros((28, 28), dtype=np.float32)
    image[4:24, 6:22] = 1.0
    return image


@pytest.fixture(scope="module")
def inputs(mnist_digits) -> np.ndarray:
    digits = [mnist_digits[d].astype(np.float32) / 255 for d in range(10)]
    odd = [tiny_in_corner(d) for d in digits[:3]] + [blob(), np.zeros((28, 28), np.float32)]
    return np.stack(digits + odd)


def test_statistics_of_real_digits_and_of_what_does_not_look_like_them(inputs):
    values = measure(inputs)
    digits = slice(0, 10)
    assert np.all(values["bbox_size_pixels"][digits] == 20)  # MNIST scales every digit into a 20-pixel box
    assert np.all(values["centre_offset_pixels"][digits] < 1.5)  # ... and centres it by mass
    assert np.all((values["ink_share"][digits] > 0.05) & (values["ink_share"][digits] < 0.35))
    corner = slice(10, 13)
    assert np.all(values["bbox_size_pixels"][corner] <= 7)
    assert np.all(values["centre_offset_pixels"][corner] > 12)
    assert values["ink_share"][13] == pytest.approx(20 * 16 / 784)
    assert values["mean_intensity"][13] == pytest.approx(20 * 16 / 784)
    assert values["bbox_size_pixels"][13] == 20
    assert [values[name][14] for name in STATISTICS] == [0, 0, 0, 0]  # blank: zeros, no NaN


def exposition(collector_registry: CollectorRegistry) -> str:
    return generate_latest(collector_registry).decode()


def test_the_histograms_count_every_input_even_before_a_chunk_is_full(inputs):
    registry = CollectorRegistry()
    statistics = InputStatistics(registry, chunk=1000)
    statistics.record(inputs[:3])
    statistics.record(inputs[3:4])
    text = exposition(registry)  # a scrape measures what is pending
    assert sample(text, "mnist_input_statistic_count", statistic="ink_share") == 4
    expected_sum = measure(inputs[:4])["centre_offset_pixels"].sum()
    assert sample(text, "mnist_input_statistic_sum", statistic="centre_offset_pixels") == pytest.approx(expected_sum)
    # "le" means at most: a box of exactly 20 pixels is in the 20 bucket, not above it.
    assert sample(text, "mnist_input_statistic_bucket", statistic="bbox_size_pixels", le="19.0") == 0
    assert sample(text, "mnist_input_statistic_bucket", statistic="bbox_size_pixels", le="20.0") == 4
    for name in STATISTICS:
        assert f'mnist_input_statistic_bucket{{le="+Inf",statistic="{name}"}} 4.0' in text
        assert len(BUCKETS[name]) == len(set(BUCKETS[name])) and list(BUCKETS[name]) == sorted(BUCKETS[name])
    # Without a reference (a version trained before they were recorded) nothing is "outside".
    assert "mnist_input_outside_training_range_total" not in text
    assert "mnist_training_input_statistic" not in text


def reference_like(inputs: np.ndarray) -> dict[str, dict[str, float]]:
    return summarize((inputs * 255).round().astype(np.uint8))


def test_inputs_outside_the_training_range_are_counted_per_statistic(inputs):
    registry = CollectorRegistry()
    statistics = InputStatistics(registry, chunk=4)  # measured in chunks of four as they come
    statistics.set_reference(reference_like(inputs[:10]))
    for image in inputs:
        statistics.record(image[np.newaxis])
    text = exposition(registry)
    assert sample(text, "mnist_input_statistic_count", statistic="ink_share") == len(inputs)
    # The three corner digits and the blank one are outside on box size; the blob is not (20 px).
    assert sample(text, "mnist_input_outside_training_range_total", statistic="bbox_size_pixels") == 4
    outside_centre = sample(text, "mnist_input_outside_training_range_total", statistic="centre_offset_pixels")
    assert outside_centre >= 3
    assert sample(text, "mnist_input_outside_training_range_total", statistic="ink_share") >= 2  # blob, blank
    for quantity in ("mean", "std", "p01", "p50", "p99"):
        assert f'mnist_training_input_statistic{{quantity="{quantity}",statistic="ink_share"}}' in text


def test_the_tolerance_widens_the_range_by_exactly_its_amount():
    registry = CollectorRegistry()
    statistics = InputStatistics(registry, chunk=1)
    reference = {name: {"mean": 20.0, "std": 0.0, "p01": 20.0, "p50": 20.0, "p99": 20.0} for name in STATISTICS}
    statistics.set_reference({"bbox_size_pixels": reference["bbox_size_pixels"]})
    for side in (18, 17):  # a box of 18 pixels is within the 2-pixel tolerance, 17 is not
        image = np.zeros((1, 28, 28), dtype=np.float32)
        image[0, 5 : 5 + side, 10:12] = 1.0
        statistics.record(image)
    assert TOLERANCE["bbox_size_pixels"] == 2
    assert sample(exposition(registry), "mnist_input_outside_training_range_total", statistic="bbox_size_pixels") == 1


def test_the_service_exports_live_statistics_and_the_served_versions_reference(client, mnist_digits, model_dir):
    version = (model_dir / "CURRENT").read_text().strip()
    reference = json.loads((model_dir / version / "metadata.json").read_text())["data"]["input_statistics"]
    for digit in (0, 3, 7):
        assert client.post("/api/v1/predict", json={"image": as_floats(mnist_digits[digit])}).status_code == 200
    batch = [as_floats(mnist_digits[d]) for d in (1, 2)]
    assert client.post("/api/v1/predict/batch", json={"images": batch}).status_code == 200
    assert client.post("/api/v1/predict", json={"image": [2.0] * 784}).status_code == 422  # never reached the model
    text = client.get("/metrics").text
    assert sample(text, "mnist_input_statistic_count", statistic="bbox_size_pixels") == 5
    assert sample(text, "mnist_input_outside_training_range_total", statistic="bbox_size_pixels") == 0
    served = sample(text, "mnist_training_input_statistic", statistic="ink_share", quantity="p99")
    assert served == pytest.approx(reference["ink_share"]["p99"])
