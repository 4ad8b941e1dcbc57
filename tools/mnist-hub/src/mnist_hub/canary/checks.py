"""The canary's checks: what Prometheus is asked (the same question of the canary and of the
stable replicas, over the same window), and the verdict on the answers, as pure functions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from mnist_hub.canary.config import AnalysisConfig

CANARY_JOB = "mnist-backend-canary"
STABLE_JOB = "mnist-backend"
# The routes that answer with the model (single, batch, Open Inference Protocol).
PREDICTION_ROUTES = "/api/v1/predict.*|/v2/models/.+/infer"


class Prometheus(Protocol):
    def vector(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query's samples: (labels, value) each."""
        ...


def side_queries(job: str, window: str, below: float) -> dict[str, str]:
    """The PromQL of every measurement for one side (a scrape job) over ``window`` ("60s")."""
    selector = f'job="{job}",route=~"{PREDICTION_ROUTES}"'
    requests = f"sum(increase(mnist_http_requests_total{{{selector}}}[{window}]))"
    errors = f'sum(increase(mnist_http_requests_total{{{selector},status=~"5.."}}[{window}]))'
    return {
        "requests": requests,
        "error_ratio": f"({errors} or vector(0)) / {requests}",
        "latency_p99": (
            "histogram_quantile(0.99, sum by (le) (increase(mnist_http_request_duration_seconds_bucket"
            f'{{job="{job}",route=~"{PREDICTION_ROUTES}"}}[{window}])))'
        ),
        "low_confidence": (
            f'sum(increase(mnist_prediction_confidence_bucket{{job="{job}",le="{below:g}"}}[{window}]))'
            f' / sum(increase(mnist_prediction_confidence_count{{job="{job}"}}[{window}]))'
        ),
        "digits": f'sum by (digit) (increase(mnist_predictions_total{{job="{job}"}}[{window}]))',
        "input_drift": (
            f'max(sum by (statistic) (increase(mnist_input_outside_training_range_total{{job="{job}"}}[{window}])))'
            f' / sum(increase(mnist_inference_images_total{{job="{job}"}}[{window}]))'
        ),
    }


def digit_mix_distance_query(window: str) -> str:
    """The ``digit_mix`` check as one PromQL expression (the dashboard's; the analysis computes it
    from the two per-digit vectors): the total variation distance between the two mixes."""

    def mix(job: str) -> str:
        counts = f'increase(mnist_predictions_total{{job="{job}"}}[{window}])'
        return f"(sum by (digit) ({counts}) / scalar(sum({counts})))"

    return f"0.5 * sum(abs({mix(CANARY_JOB)} - {mix(STABLE_JOB)}))"


def feedback_query(model_version: str, window: str) -> str:
    return f'sum by (verdict) (increase(mnist_feedback_total{{model_version="{model_version}"}}[{window}]))'


@dataclass(frozen=True)
class Side:
    """What one side (canary or stable) did in the window; None: Prometheus had no data."""

    requests: float | None = None
    error_ratio: float | None = None
    latency_p99: float | None = None
    low_confidence: float | None = None
    digits: Mapping[str, float] = field(default_factory=dict)
    input_drift: float | None = None
    corrections: Mapping[str, float] = field(default_factory=dict)  # verdict -> count


def _value(samples: list[tuple[dict[str, str], float]]) -> float | None:
    if not samples or not math.isfinite(samples[0][1]):
        return None  # no series, or NaN (0/0: nothing happened)
    return samples[0][1]


def measure(prometheus: Prometheus, job: str, model_version: str, window: str, config: AnalysisConfig) -> Side:
    queries = side_queries(job, window, config.thresholds.low_confidence_below)
    values = {name: prometheus.vector(expr) for name, expr in queries.items()}
    return Side(
        requests=_value(values["requests"]),
        error_ratio=_value(values["error_ratio"]),
        latency_p99=_value(values["latency_p99"]),
        low_confidence=_value(values["low_confidence"]),
        digits={labels.get("digit", "?"): value for labels, value in values["digits"] if math.isfinite(value)},
        input_drift=_value(values["input_drift"]),
        corrections={
            labels.get("verdict", "?"): value
            for labels, value in prometheus.vector(feedback_query(model_version, window))
            if math.isfinite(value)
        },
    )


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    canary: float | None
    stable: float | None
    rule: str  # the threshold, in words
    note: str = ""

    def line(self) -> str:
        def shown(value: float | None) -> str:
            return "no data" if value is None else f"{value:.4g}"

        mark = "pass" if self.passed else "FAIL"
        note = f" ({self.note})" if self.note else ""
        return f"{mark}  {self.name}: canary {shown(self.canary)}, stable {shown(self.stable)}; {self.rule}{note}"

    def as_dict(self) -> dict[str, object]:
        return {
            "check": self.name,
            "passed": self.passed,
            "canary": self.canary,
            "stable": self.stable,
            "rule": self.rule,
            "note": self.note,
        }


def _at_most_more(name: str, canary: float | None, stable: float | None, limit: float, unit: str = "") -> CheckResult:
    rule = f"canary <= stable + {limit:g}{unit}"
    if canary is None or stable is None:
        return CheckResult(name, False, canary, stable, rule, "no data")
    return CheckResult(name, canary <= stable + limit, canary, stable, rule)


def distance(canary: Mapping[str, float], stable: Mapping[str, float]) -> float | None:
    """Total variation distance between two count vectors (None when either is empty)."""
    canary_total, stable_total = sum(canary.values()), sum(stable.values())
    if canary_total <= 0 or stable_total <= 0:
        return None
    keys = set(canary) | set(stable)
    return 0.5 * sum(abs(canary.get(k, 0) / canary_total - stable.get(k, 0) / stable_total) for k in keys)


def judge(canary: Side, stable: Side, config: AnalysisConfig) -> list[CheckResult]:
    """Every check of one interval (all must pass)."""
    t = config.thresholds
    results = [
        CheckResult(
            "traffic",
            canary.requests is not None and canary.requests >= config.min_requests,
            canary.requests,
            stable.requests,
            f"canary >= {config.min_requests} prediction requests",
            "" if canary.requests is not None else "no data",
        ),
        _at_most_more("error_ratio", canary.error_ratio, stable.error_ratio, t.error_ratio_max_increase),
        _at_most_more("latency_p99", canary.latency_p99, stable.latency_p99, t.latency_p99_max_increase_s, " s"),
        _at_most_more("low_confidence", canary.low_confidence, stable.low_confidence, t.low_confidence_max_increase),
    ]
    mix = distance(canary.digits, stable.digits)
    rule = f"distance <= {t.digit_mix_max_distance:g}"
    results.append(
        CheckResult("digit_mix", mix is not None and mix <= t.digit_mix_max_distance, mix, 0.0, rule)
        if mix is not None
        else CheckResult("digit_mix", False, None, None, rule, "no data")
    )
    results.append(_at_most_more("input_drift", canary.input_drift, stable.input_drift, t.input_drift_max_increase))
    results.append(live_accuracy(canary.corrections, stable.corrections, config))
    return results


def live_accuracy(canary: Mapping[str, float], stable: Mapping[str, float], config: AnalysisConfig) -> CheckResult:
    """People's corrections: judged when both versions have enough of them in the window."""
    t = config.thresholds
    rule = f"canary >= stable - {t.live_accuracy_max_drop:g}"
    counts = (sum(canary.values()), sum(stable.values()))
    if min(counts) < t.live_accuracy_min_corrections:
        fewest = t.live_accuracy_min_corrections
        note = f"not judged: {counts[0]:.0f} and {counts[1]:.0f} corrections, fewer than {fewest}"
        shares = [s.get("right", 0) / n if n else None for s, n in zip((canary, stable), counts, strict=True)]
        return CheckResult("live_accuracy", True, shares[0], shares[1], rule, note)
    right_canary, right_stable = canary.get("right", 0) / counts[0], stable.get("right", 0) / counts[1]
    held = right_canary >= right_stable - t.live_accuracy_max_drop
    return CheckResult("live_accuracy", held, right_canary, right_stable, rule)


def failed(results: list[CheckResult]) -> list[CheckResult]:
    return [result for result in results if not result.passed]
