"""Prometheus's HTTP API (an instant query), with the standard library: the tool runs on a deploy
host with python3 only."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from mnist_hub.errors import DeployError


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 10) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout

    def vector(self, expr: str) -> list[tuple[dict[str, str], float]]:
        query = urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=self.timeout) as answer:  # noqa: S310 - the operator's Prometheus URL
                body = json.load(answer)
        except (OSError, ValueError) as error:
            raise DeployError(f"Prometheus at {self.url} did not answer the query {expr!r}: {error}") from None
        return samples(expr, body)


def samples(expr: str, body: dict) -> list[tuple[dict[str, str], float]]:
    """The (labels, value) pairs of an instant query's answer (the API's JSON)."""
    data = body.get("data") or {}
    if body.get("status") != "success":
        raise DeployError(f"Prometheus refused the query {expr!r}: {body.get('error', body)}")
    if data.get("resultType") == "scalar":
        return [({}, float(data["result"][1]))]
    return [(sample.get("metric", {}), float(sample["value"][1])) for sample in data.get("result", [])]
