"""The analysis's settings: monitoring/canary-analysis.toml, with command-line overrides."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_hub.errors import UsageError

CONFIG_FILE = Path("monitoring") / "canary-analysis.toml"
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class Thresholds:
    error_ratio_max_increase: float = 0.01
    latency_p99_max_increase_s: float = 0.015
    low_confidence_below: float = 0.5
    low_confidence_max_increase: float = 0.1
    digit_mix_max_distance: float = 0.2
    input_drift_max_increase: float = 0.05
    live_accuracy_min_corrections: int = 20
    live_accuracy_max_drop: float = 0.05


@dataclass(frozen=True)
class AnalysisConfig:
    steps: tuple[float, ...] = (5.0, 25.0, 50.0)
    interval_s: float = 60.0
    failure_budget: int = 1
    wait_for_canary_s: float = 180.0
    min_requests: int = 20
    thresholds: Thresholds = field(default_factory=Thresholds)

    def describe(self) -> str:
        steps = " -> ".join(f"{w:g} %" for w in self.steps)
        return (
            f"steps {steps}, {self.interval_s:g} s each, failure budget {self.failure_budget}, "
            f"at least {self.min_requests} canary requests an interval"
        )


def _number(table: dict[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UsageError(f"{where}: {key} must be a number of at least 0, not {value!r}")
    return float(value)


def parse_steps(value: object, where: str) -> tuple[float, ...]:
    """Rising shares of traffic, each above 0 and at most 100 per cent."""
    if isinstance(value, str):
        try:
            value = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"{where}: steps are comma-separated percentages, not {value!r}") from None
    if not isinstance(value, list) or not value or not all(isinstance(v, int | float) for v in value):
        raise UsageError(f"{where}: steps must be a list of percentages, not {value!r}")
    steps = tuple(float(v) for v in value)
    if any(not 0 < v <= 100 for v in steps) or list(steps) != sorted(set(steps)):
        raise UsageError(f"{where}: steps must rise, each above 0 and at most 100 per cent: {value!r}")
    return steps


def load(path: Path, overrides: dict[str, str] | None = None) -> AnalysisConfig:
    """The configuration in ``path`` (its defaults where it says nothing), then ``overrides``
    (steps, interval_s, failure_budget from the command line)."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no canary analysis configuration at {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: {error}") from None
    where = str(path)
    for key, value in (overrides or {}).items():
        if key == "steps":
            data["steps"] = value
        else:
            try:
                data[key] = float(value)
            except ValueError:
                option = key.removesuffix("_s").replace("_", "-")
                raise UsageError(f"--{option} must be a number, not {value!r}") from None
    checks = data.get("checks", {})

    def check(name: str) -> dict[str, Any]:
        table = checks.get(name, {})
        if not isinstance(table, dict):
            raise UsageError(f"{where}: [checks.{name}] must be a table")
        return table

    defaults = Thresholds()
    below = _number(check("low_confidence"), "below", defaults.low_confidence_below, where)
    if below not in CONFIDENCE_BUCKETS:
        raise UsageError(f"{where}: checks.low_confidence.below must be a confidence bucket {CONFIDENCE_BUCKETS}")
    thresholds = Thresholds(
        error_ratio_max_increase=_number(
            check("error_ratio"), "max_increase", defaults.error_ratio_max_increase, where
        ),
        latency_p99_max_increase_s=_number(
            check("latency_p99"), "max_increase_s", defaults.latency_p99_max_increase_s, where
        ),
        low_confidence_below=below,
        low_confidence_max_increase=_number(
            check("low_confidence"), "max_increase", defaults.low_confidence_max_increase, where
        ),
        digit_mix_max_distance=_number(check("digit_mix"), "max_distance", defaults.digit_mix_max_distance, where),
        input_drift_max_increase=_number(
            check("input_drift"), "max_increase", defaults.input_drift_max_increase, where
        ),
        live_accuracy_min_corrections=int(
            _number(check("live_accuracy"), "min_corrections", defaults.live_accuracy_min_corrections, where)
        ),
        live_accuracy_max_drop=_number(check("live_accuracy"), "max_drop", defaults.live_accuracy_max_drop, where),
    )
    config = AnalysisConfig(
        steps=parse_steps(data.get("steps", list(AnalysisConfig.steps)), where),
        interval_s=_number(data, "interval_s", AnalysisConfig.interval_s, where),
        failure_budget=int(_number(data, "failure_budget", AnalysisConfig.failure_budget, where)),
        wait_for_canary_s=_number(data, "wait_for_canary_s", AnalysisConfig.wait_for_canary_s, where),
        min_requests=int(_number(data, "min_requests", AnalysisConfig.min_requests, where)),
        thresholds=thresholds,
    )
    if config.interval_s < 10:
        raise UsageError(f"{where}: interval_s must be at least 10 s (two scrapes of the backends)")
    return config
