"""Dashboards against Grafana's own schema: the Grafana Foundation SDK's models (the types
Grafana generates from its schema) read each dashboard and write it back. Grafana ignores a key it
does not know without a word, and so does the SDK: a key it drops, or a value it changes, is a
key Grafana would not have read (a misspelt `gridPos`, `legend`, `unit`, `expr`). Keys it adds
are Grafana's defaults."""

from __future__ import annotations

import json
import re
from typing import Any

from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

register_default_plugins()  # the panel and query types (timeseries, stat, table, prometheus...)

# Grafana's own variables, as Grafana would replace them before Prometheus sees the query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def round_trip(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard as the SDK's models read and write it."""
    written = Dashboard.from_json(dashboard).to_json()
    return json.loads(json.dumps(written, default=lambda value: value.to_json()))


def unread(original: Any, back: Any, path: str = "") -> list[str]:
    """What ``back`` lost or changed of ``original`` (what it added is not counted)."""
    if isinstance(original, dict) and isinstance(back, dict):
        lost = []
        for key, value in original.items():
            lost += (
                [f"{path}.{key}: not in Grafana's schema"]
                if key not in back
                else unread(value, back[key], f"{path}.{key}")
            )
        return lost
    if isinstance(original, list) and isinstance(back, list) and len(original) == len(back):
        return [
            problem
            for i, pair in enumerate(zip(original, back, strict=True))
            for problem in unread(*pair, f"{path}[{i}]")
        ]
    return [] if original == back else [f"{path}: {original!r} read as {back!r}"]


def as_prometheus_sees_it(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    left = re.findall(r"\$\w+", expr)
    assert not left, f"a dashboard variable Grafana would not replace: {left} in {expr}"
    return expr
