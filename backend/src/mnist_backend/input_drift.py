"""Input drift: the contract's four input statistics (``mnist_contract.input_statistics``) of
every input the model is given, live and as trained. The service exports:

- ``mnist_input_statistic{statistic}``: a histogram of each, as served;
- ``mnist_input_outside_training_range_total{statistic}``: inputs outside the training
  split's 1st-99th percentile range (widened by ``TOLERANCE``); for inputs like the training
  data that is about 2 % of them, and monitoring alerts when it is far more
  (monitoring/prometheus/rules/drift.yml);
- ``mnist_training_input_statistic{statistic, quantity}``: the served version's reference.

Cost: a request only appends its array to a buffer; the statistics are computed for 256
inputs at a time (and before every scrape) in a few vectorized numpy calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from mnist_contract.input_statistics import STATISTICS, SUMMARY_QUANTITIES, measure

BUCKETS = {
    "ink_share": (0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6),
    "mean_intensity": (0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6),
    "bbox_size_pixels": (4, 8, 12, 14, 16, 17, 18, 19, 20, 21, 22, 24, 26, 28),
    "centre_offset_pixels": (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0),
}
# How far beyond the training split's 1st/99th percentiles an input may lie and still count as
# "like the training data": canvas preprocessing anti-aliases the 20-pixel box its digits are
# scaled to, so their box measures 18-20 pixels where MNIST's measures 20 almost always.
TOLERANCE = {"ink_share": 0.02, "mean_intensity": 0.02, "bbox_size_pixels": 2.0, "centre_offset_pixels": 0.5}
CHUNK = 256


def training_ranges(reference: Mapping[str, Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """The range each statistic's inputs are "like the training data" in: p01..p99 +- tolerance."""
    return {
        name: (reference[name]["p01"] - TOLERANCE[name], reference[name]["p99"] + TOLERANCE[name])
        for name in STATISTICS
        if name in reference
    }


class InputStatistics(Collector):
    """Buffers model inputs and exports their statistics, with the served version's reference."""

    def __init__(self, registry: CollectorRegistry, chunk: int = CHUNK) -> None:
        self._chunk = chunk
        self._lock = threading.Lock()  # requests append on the event loop and on decode threads
        self._pending: list[np.ndarray] = []
        self._pending_images = 0
        self._measured = threading.Lock()
        self._bucket_counts = {name: np.zeros(len(BUCKETS[name]) + 1, dtype=np.int64) for name in STATISTICS}
        self._sums = dict.fromkeys(STATISTICS, 0.0)
        self._outside = dict.fromkeys(STATISTICS, 0)
        self._reference: Mapping[str, Mapping[str, float]] = {}
        self._ranges: dict[str, tuple[float, float]] = {}
        registry.register(self)

    def record(self, pixels: np.ndarray) -> None:
        """Note ``[N, 28, 28]`` inputs; they are measured when ``CHUNK`` have gathered."""
        with self._lock:
            self._pending.append(pixels)
            self._pending_images += len(pixels)
            full = self._pending_images >= self._chunk
        if full:
            self.measure_pending()

    def set_reference(self, reference: Mapping[str, Mapping[str, float]] | None) -> None:
        """The served version's training statistics (None: a version that carries none)."""
        self.measure_pending()  # inputs served by the previous version are judged by its range
        with self._measured:
            self._reference = reference or {}
            self._ranges = training_ranges(self._reference)

    def measure_pending(self) -> None:
        with self._lock:
            pending, self._pending, self._pending_images = self._pending, [], 0
        if not pending:
            return
        values = measure(np.concatenate(pending) if len(pending) > 1 else pending[0])
        with self._measured:
            for name, column in values.items():
                bucket = np.searchsorted(BUCKETS[name], column, side="left")  # le: value <= bound
                self._bucket_counts[name] += np.bincount(bucket, minlength=len(BUCKETS[name]) + 1)
                self._sums[name] += float(column.sum())
                if name in self._ranges:
                    low, high = self._ranges[name]
                    self._outside[name] += int(np.count_nonzero((column < low) | (column > high)))

    def collect(self) -> Iterator[Metric]:
        self.measure_pending()
        with self._measured:
            histogram = HistogramMetricFamily(
                "mnist_input_statistic",
                "Statistics of the inputs the model was given (ink share, mean intensity, box size, centre offset)",
                labels=["statistic"],
            )
            outside = CounterMetricFamily(
                "mnist_input_outside_training_range",
                "Inputs whose statistic lies outside the training split's 1st-99th percentile range",
                labels=["statistic"],
            )
            for name in STATISTICS:
                cumulative = np.cumsum(self._bucket_counts[name]).tolist()
                buckets = [
                    (floatToGoString(bound), count) for bound, count in zip(BUCKETS[name], cumulative, strict=False)
                ]
                histogram.add_metric([name], [*buckets, ("+Inf", cumulative[-1])], self._sums[name])
                if name in self._ranges:
                    outside.add_metric([name], self._outside[name])
            yield histogram
            if self._ranges:  # without a reference there is no range to be outside of
                yield outside
            if self._reference:
                reference = GaugeMetricFamily(
                    "mnist_training_input_statistic",
                    "The served version's training split: mean, std and percentiles of each input statistic",
                    labels=["statistic", "quantity"],
                )
                for name, quantities in self._reference.items():
                    for quantity in SUMMARY_QUANTITIES:
                        reference.add_metric([name, quantity], quantities[quantity])
                yield reference
