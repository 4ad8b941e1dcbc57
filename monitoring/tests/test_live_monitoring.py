"""A real Prometheus (the dev config, pointed at 127.0.0.1) scrapes a real backend that
served real predictions and a real nginx through its exporter; every dashboard query and
recording rule must return data. Then the backend stops: the down alert travels through a
real Alertmanager to a local stand-in for Slack, and the resolution follows the restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from mnist_testkit.digits import load_digits
from mnist_testkit.models import trained_model_dir
from tests.processes import (
    MONITORING,
    Process,
    SlackStandIn,
    free_port,
    http_ok,
    require,
    start_backend,
    wait_until,
)

PROMETHEUS_DIR = MONITORING / "prometheus"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "15s"}


def dashboard_queries() -> list[tuple[str, str]]:
    queries = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for macro, value in GRAFANA_MACROS.items():
                    expr = expr.replace(macro, value)
                queries.append((f"{path.stem}: {panel['title']}", expr))
    return queries


def recording_rules() -> list[str]:
    return [
        rule["record"]
        for name in ("recording.yml", "slo.yml")
        for group in yaml.safe_load((PROMETHEUS_DIR / "rules" / name).read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]


def series_count(prometheus_url: str, expr: str) -> int:
    """How many series an instant query returns (0 = the panel would be empty)."""
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return len(body["data"]["result"])


def prometheus_config_for_this_host(ports: dict, tmp: Path) -> Path:
    """The dev config with test-only overrides: addresses on 127.0.0.1, 1 s intervals, the
    edge job from the prod config, an Alertmanager, and `for` shortened on the down alert."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus-dev.yml").read_text())
    prod = yaml.safe_load((PROMETHEUS_DIR / "prometheus-prod.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['prometheus']}"]}]
    backend = jobs["mnist-backend"]
    assert "dns_sd_configs" in backend  # replicas are discovered, not listed by hand
    del backend["dns_sd_configs"]
    backend["static_configs"] = [{"targets": [f"127.0.0.1:{ports['backend']}"]}]
    nginx = next(job for job in prod["scrape_configs"] if job["job_name"] == "nginx")
    nginx["static_configs"] = [{"targets": [f"127.0.0.1:{ports['exporter']}"]}]
    config["scrape_configs"].append(nginx)
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]}

    alerts = yaml.safe_load((PROMETHEUS_DIR / "rules" / "alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "MnistBackendDown":
                rule["for"] = "2s"
    (tmp / "alerts.yml").write_text(yaml.safe_dump(alerts))
    config["rule_files"] = [
        str(PROMETHEUS_DIR / "rules" / "recording.yml"),
        str(tmp / "alerts.yml"),
        str(PROMETHEUS_DIR / "rules" / "slo.yml"),
    ]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def alertmanager_config_for_this_host(slack_url: str, tmp: Path) -> Path:
    """The real alertmanager.yml; the secret file holds the stand-in's URL, waits are 1 s."""
    config = yaml.safe_load((MONITORING / "alertmanager" / "alertmanager.yml").read_text())
    secret = tmp / "slack_webhook"
    secret.write_text(slack_url)
    config["global"]["slack_api_url_file"] = str(secret)
    config["templates"] = [str(MONITORING / "alertmanager" / "templates" / "*.tmpl")]

    def shorten(route: dict) -> None:
        route.update(group_wait="1s", group_interval="1s")
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def nginx_config(port: int, backend_port: int, tmp: Path) -> Path:
    path = tmp / "nginx.conf"
    path.write_text(
        f"""
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /stub_status {{ stub_status; }}
    location / {{ proxy_pass http://127.0.0.1:{backend_port}; }}
  }}
}}
"""
    )
    return path


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return trained_model_dir()


@pytest.fixture(scope="module")
def stack(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("monitoring")
    ports = {name: free_port() for name in ("backend", "nginx", "exporter", "prometheus", "alertmanager")}
    slack = SlackStandIn()
    processes: dict[str, Process] = {}
    try:
        processes["backend"] = start_backend(model_dir, ports["backend"], tmp)
        processes["nginx"] = Process(
            [
                require("nginx"),
                "-c",
                str(nginx_config(ports["nginx"], ports["backend"], tmp)),
                "-e",
                str(tmp / "nginx-error.log"),
            ],
            tmp / "nginx.log",
            f"http://127.0.0.1:{ports['nginx']}/stub_status",
        )
        processes["exporter"] = Process(
            [
                require("prometheus-nginx-exporter"),
                f"-nginx.scrape-uri=http://127.0.0.1:{ports['nginx']}/stub_status",
                f"-web.listen-address=127.0.0.1:{ports['exporter']}",
            ],
            tmp / "exporter.log",
            f"http://127.0.0.1:{ports['exporter']}/metrics",
        )
        processes["alertmanager"] = Process(
            [
                require("prometheus-alertmanager"),
                f"--config.file={alertmanager_config_for_this_host(slack.url, tmp)}",
                f"--storage.path={tmp / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
            tmp / "alertmanager.log",
            f"http://127.0.0.1:{ports['alertmanager']}/-/ready",
        )
        processes["prometheus"] = Process(
            [
                require("prometheus"),
                f"--config.file={prometheus_config_for_this_host(ports, tmp)}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            tmp / "prometheus.log",
            f"http://127.0.0.1:{ports['prometheus']}/-/ready",
        )
        yield {
            "ports": ports,
            "tmp": tmp,
            "slack": slack,
            "processes": processes,
            "model_dir": model_dir,
            "prometheus": f"http://127.0.0.1:{ports['prometheus']}",
            "backend": f"http://127.0.0.1:{ports['backend']}",
            "nginx": f"http://127.0.0.1:{ports['nginx']}",
        }
    finally:
        for process in reversed(list(processes.values())):
            process.stop()
        slack.close()


def serve_real_traffic(stack: dict) -> None:
    digits = load_digits()
    with httpx.Client(timeout=10) as client:
        for base in (stack["backend"], stack["nginx"]):  # directly, and through the edge
            for pixels in digits.values():
                image = [value / 255 for row in pixels for value in row]
                assert client.post(f"{base}/api/v1/predict", json={"image": image}).status_code == 200
            assert client.post(f"{base}/api/v1/predict/batch", json={"images": [[0.2] * 784] * 3}).status_code == 200
            assert client.post(f"{base}/api/v1/predict", json={"image": [0.5] * 10}).status_code == 422


def targets_up(prometheus: str) -> dict[str, str]:
    targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    return {t["labels"]["job"]: t["health"] for t in targets}


def test_prometheus_scrapes_and_every_panel_and_rule_has_data(stack):
    prometheus = stack["prometheus"]
    expected = {"prometheus": "up", "mnist-backend": "up", "nginx": "up"}
    try:
        wait_until(lambda: targets_up(prometheus) == expected, what="every target to be up")
    except AssertionError:
        raise AssertionError(f"targets not all up: {targets_up(prometheus)}") from None
    serve_real_traffic(stack)
    time.sleep(3)  # a few 1 s scrapes after the traffic, so rate() has two points
    serve_real_traffic(stack)

    def everything_has_data() -> list[str]:
        empty = [f"{name}: {expr}" for name, expr in dashboard_queries() if series_count(prometheus, expr) == 0]
        empty += [f"recording rule {record}" for record in recording_rules() if series_count(prometheus, record) == 0]
        return empty

    missing: list[str] = []

    def settled() -> bool:
        missing[:] = everything_has_data()
        return not missing

    try:
        wait_until(settled, timeout=45, what="every dashboard query and recording rule to return data")
    except AssertionError:
        raise AssertionError("queries without data:\n" + "\n".join(missing)) from None
    assert len(dashboard_queries()) >= 15


def test_a_query_on_a_metric_the_backend_does_not_export_is_caught(stack):
    """The check above can fail: a panel on a misspelt metric finds no series."""
    prometheus = stack["prometheus"]
    wait_until(lambda: series_count(prometheus, "mnist_predictions_total") > 0, what="predictions to be scraped")
    assert series_count(prometheus, "sum by (digit) (rate(mnist_prediction_total[1m]))") == 0
    assert series_count(prometheus, "mnist_model_accuracy") == 0


def test_backend_down_alert_reaches_slack_and_resolves_after_restart(stack):
    slack, processes = stack["slack"], stack["processes"]
    processes["backend"].stop()

    def titles_with(word: str) -> list[str]:
        return [t for t in slack.titles() if word in t and "MnistBackendDown" in t]

    fired = wait_until(lambda: titles_with("FIRING"), timeout=60, what="the down alert at the Slack stand-in")
    assert "[dev]" in fired[0]
    message = next(m for m in slack.messages if "FIRING" in m["payload"]["attachments"][0]["title"])
    assert message["payload"]["channel"] == "#mnist-alerts-staging"  # dev and staging share a channel
    text = message["payload"]["attachments"][0]["text"]
    assert f"127.0.0.1:{stack['ports']['backend']}" in text and "Runbook:" in text

    processes["backend"] = start_backend(stack["model_dir"], stack["ports"]["backend"], stack["tmp"])
    resolved = wait_until(lambda: titles_with("RESOLVED"), timeout=60, what="the resolution at the Slack stand-in")
    assert "[dev]" in resolved[0]
    assert http_ok(stack["backend"] + "/ready")
