"""A real Prometheus (the dev config, pointed at 127.0.0.1) scrapes a real backend that
served real predictions, a real nginx through its exporter, a real node-exporter, and a real
blackbox-exporter probing through nginx over HTTPS; every dashboard query and recording rule
must return data. Off-distribution inputs make the drift alert fire (windows shortened),
normal digits keep it quiet. Then the backend stops: the down alert travels through a real
Alertmanager to a local stand-in for Slack, and the resolution follows the restart."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from mnist_testkit.digits import load_digits
from mnist_testkit.models import trained_model_dir
from tests.processes import (
    MONITORING,
    REPO_ROOT,
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
        for name in ("recording.yml", "slo.yml", "drift.yml", "feedback.yml")
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
    prod_jobs = {job["job_name"]: job for job in prod["scrape_configs"]}
    # The canary's job scrapes the same backend: the canary panels' queries then have data.
    canary = prod_jobs["mnist-backend-canary"]
    del canary["dns_sd_configs"]
    canary["static_configs"] = [{"targets": [f"127.0.0.1:{ports['backend']}"]}]
    prod_jobs["nginx"]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['exporter']}"]}]
    prod_jobs["node"]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['node']}"]}]
    prod_jobs["blackbox-exporter"]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['blackbox']}"]}]
    # The probes as production has them (through the edge, over HTTPS), at this nginx's TLS port.
    edge = f"https://127.0.0.1:{ports['nginx_tls']}"
    for name, path in (("blackbox-page", "/health"), ("blackbox-api", "/ready")):
        job = prod_jobs[name]
        assert job["params"]["module"] == ["edge_https"]
        job["static_configs"] = [{"targets": [edge + path]}]
        job["relabel_configs"] = [dict(rule) for rule in job["relabel_configs"]]
        job["relabel_configs"][-1]["replacement"] = f"127.0.0.1:{ports['blackbox']}"
    config["scrape_configs"] += [prod_jobs[name] for name in PROD_ONLY_JOBS]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]}

    alerts = yaml.safe_load((PROMETHEUS_DIR / "rules" / "alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "MnistBackendDown":
                rule["for"] = "2s"
    (tmp / "alerts.yml").write_text(yaml.safe_dump(alerts))
    (tmp / "drift.yml").write_text(drift_rules_with_short_windows())
    config["rule_files"] = [
        str(PROMETHEUS_DIR / "rules" / "recording.yml"),
        str(tmp / "alerts.yml"),
        str(PROMETHEUS_DIR / "rules" / "slo.yml"),
        str(tmp / "drift.yml"),
        str(PROMETHEUS_DIR / "rules" / "feedback.yml"),
    ]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


# Production's jobs the dev config has not: the edge, the host and the outside probes.
PROD_ONLY_JOBS = ("mnist-backend-canary", "nginx", "node", "blackbox-exporter", "blackbox-page", "blackbox-api")
DRIFT_WINDOW = "60s"


def drift_rules_with_short_windows() -> str:
    """The real drift rules with 30-minute windows cut to a minute and no `for` (seconds, not hours)."""
    text = (PROMETHEUS_DIR / "rules" / "drift.yml").read_text()
    assert text.count("[30m]") == 4 and text.count("for: 15m") == 1
    return text.replace("[30m]", f"[{DRIFT_WINDOW}]").replace("for: 15m", "for: 1s")


def blackbox_config_for_this_host(ca_file: Path, tmp: Path) -> Path:
    """The real blackbox.yml, trusting this test's edge certificate."""
    config = yaml.safe_load((MONITORING / "blackbox" / "blackbox.yml").read_text())
    config["modules"]["edge_https"]["http"]["tls_config"]["ca_file"] = str(ca_file)
    path = tmp / "blackbox.yml"
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


def nginx_config(port: int, tls_port: int, backend_port: int, tmp: Path) -> Path:
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
  client_body_buffer_size 1m;  # bodies stay in memory: the workers cannot write to pytest's tmp folder
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /stub_status {{ stub_status; }}
    location / {{ proxy_pass http://127.0.0.1:{backend_port}; }}
  }}
  server {{
    listen 127.0.0.1:{tls_port} ssl;
    ssl_certificate {tmp}/certs/tls.crt;
    ssl_certificate_key {tmp}/certs/tls.key;
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
    names = ("backend", "nginx", "nginx_tls", "exporter", "node", "blackbox", "prometheus", "alertmanager")
    ports = {name: free_port() for name in names}
    slack = SlackStandIn()
    processes: dict[str, Process] = {}
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "make-dev-cert.sh"), "--dir", str(tmp / "certs")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        processes["backend"] = start_backend(model_dir, ports["backend"], tmp)
        processes["nginx"] = Process(
            [
                require("nginx"),
                "-c",
                str(nginx_config(ports["nginx"], ports["nginx_tls"], ports["backend"], tmp)),
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
        processes["node"] = Process(
            [require("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{ports['node']}"],
            tmp / "node-exporter.log",
            f"http://127.0.0.1:{ports['node']}/metrics",
        )
        processes["blackbox"] = Process(
            [
                require("prometheus-blackbox-exporter"),
                f"--config.file={blackbox_config_for_this_host(tmp / 'certs' / 'tls.crt', tmp)}",
                f"--web.listen-address=127.0.0.1:{ports['blackbox']}",
            ],
            tmp / "blackbox-exporter.log",
            f"http://127.0.0.1:{ports['blackbox']}/metrics",
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
            for digit, pixels in digits.items():
                image = [value / 255 for row in pixels for value in row]
                answer = client.post(f"{base}/api/v1/predict", json={"image": image})
                assert answer.status_code == 200
                # People confirm most answers and correct one (the 0): the live-accuracy series.
                body = answer.json()
                label = digit or 8
                correction = {"prediction_id": body["prediction_id"], "token": body["feedback_token"], "label": label}
                assert client.post(f"{base}/api/v1/feedback", json=correction).status_code == 200
            batch = [[value / 255 for row in digits[d] for value in row] for d in (4, 5, 6)]
            assert client.post(f"{base}/api/v1/predict/batch", json={"images": batch}).status_code == 200
            assert client.post(f"{base}/api/v1/predict", json={"image": [0.5] * 10}).status_code == 422


def targets_up(prometheus: str) -> dict[str, str]:
    targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    return {t["labels"]["job"]: t["health"] for t in targets}


def test_prometheus_scrapes_and_every_panel_and_rule_has_data(stack):
    prometheus = stack["prometheus"]
    expected = dict.fromkeys(("prometheus", "mnist-backend", *PROD_ONLY_JOBS), "up")
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


def as_floats(image: np.ndarray) -> list[float]:
    return (image.astype(np.float32) / 255).ravel().tolist()


def off_distribution_inputs() -> list[list[float]]:
    """What the training data never looks like: digits shrunk to 7x7 in a corner (a client that
    skips centring) and thick filled blobs."""
    inputs = []
    for rows in load_digits().values():
        tiny = np.zeros((28, 28))
        tiny[1:8, 1:8] = np.asarray(rows, dtype=np.float64).reshape(7, 4, 7, 4).mean(axis=(1, 3))
        blob = np.zeros((28, 28))
        blob[4:24, 6:22] = 255
        inputs += [as_floats(tiny), as_floats(blob)]
    return inputs


def send_inputs(backend: str, inputs: list[list[float]], copies: int) -> None:
    with httpx.Client(timeout=30) as client:
        for _ in range(copies):
            assert client.post(f"{backend}/api/v1/predict/batch", json={"images": inputs}).status_code == 200


def query(prometheus: str, expr: str) -> dict[str, float]:
    """An instant query's samples by their `statistic` label."""
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    return {r["metric"].get("statistic", ""): float(r["value"][1]) for r in body["data"]["result"]}


def drift_alerts(prometheus: str, job: str = "mnist-backend") -> dict[str, tuple[str, float]]:
    """A job's MnistInputDrift alerts, pending or firing, by statistic: their state and the share
    of inputs outside the training range they were last evaluated with."""
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return {
        a["labels"]["statistic"]: (a["state"], float(a["value"]))
        for a in alerts
        if a["labels"]["alertname"] == "MnistInputDrift" and a["labels"]["job"] == job
    }


def test_off_distribution_inputs_fire_the_drift_alert_and_normal_digits_keep_it_quiet(stack):
    prometheus, backend = stack["prometheus"], stack["backend"]
    ratio = "job_statistic:mnist_input_outside_training_range:ratio_rate30m"
    inputs_in_window = f"sum by (statistic) (increase(mnist_input_statistic_count[{DRIFT_WINDOW}]))"
    normal = [as_floats(np.asarray(rows)) for rows in load_digits().values()]

    send_inputs(backend, normal, copies=15)  # 150 real digits: enough to judge, like the training data
    wait_until(
        lambda: len(query(prometheus, f"{inputs_in_window} >= 100")) == 4 and len(query(prometheus, ratio)) == 4,
        timeout=30,
        what="the normal digits to be scraped and judged",
    )
    for _ in range(5):  # quiet over several evaluations, not once
        shares = query(prometheus, ratio)
        assert max(shares.values()) < 0.2, f"normal digits counted as drift: {shares}"
        assert drift_alerts(prometheus) == drift_alerts(prometheus, "mnist-backend-canary") == {}
        time.sleep(1)

    send_inputs(backend, off_distribution_inputs(), copies=20)  # 400 odd inputs

    def firing() -> dict[str, float]:
        return {statistic: value for statistic, (state, value) in drift_alerts(prometheus).items() if state == "firing"}

    # The shares are the alert's own, from the evaluation that fired it: a query afterwards reads
    # a window that a slow machine may already have slid past the odd inputs.
    shares = wait_until(
        lambda: (fired := firing()).keys() >= {"bbox_size_pixels", "ink_share", "centre_offset_pixels"} and fired,
        timeout=30,
        what="the drift alert to fire for box size, ink share and centre offset",
    )
    # Every odd input (a blob or a tiny digit) has far more or far less ink than a digit.
    assert shares["ink_share"] > 0.5, shares


def test_backend_down_alert_reaches_slack_and_resolves_after_restart(stack):
    slack, processes = stack["slack"], stack["processes"]
    processes["backend"].stop()

    def titles_with(word: str) -> list[str]:
        return [t for t in slack.titles() if word in t and "MnistBackendDown" in t]

    fired = wait_until(lambda: titles_with("FIRING"), timeout=60, what="the down alert at the Slack stand-in")
    assert "[dev]" in fired[0]
    message = next(m for m in slack.messages if m["payload"]["attachments"][0]["title"] == fired[0])
    assert message["payload"]["channel"] == "#mnist-alerts-staging"  # dev and staging share a channel
    text = message["payload"]["attachments"][0]["text"]
    assert f"127.0.0.1:{stack['ports']['backend']}" in text and "Runbook:" in text

    processes["backend"] = start_backend(stack["model_dir"], stack["ports"]["backend"], stack["tmp"])
    resolved = wait_until(lambda: titles_with("RESOLVED"), timeout=60, what="the resolution at the Slack stand-in")
    assert "[dev]" in resolved[0]
    assert http_ok(stack["backend"] + "/ready")
