"""Which Compose the scripts use: v2 by default, either one on request, a clear error otherwise."""

from __future__ import annotations

import pytest

from tests.conftest import compose_answers, run_script


@pytest.mark.parametrize(("choice", "major"), [("v1", "1."), ("v2", "2.")])
def test_compose_cli_picks_that_compose(choice, major):
    if not compose_answers(choice):
        pytest.skip(f"Compose {choice} is not installed")
    result = run_script("compose.sh", "dev", "version", "--short", env={"COMPOSE_CLI": choice})
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().startswith(major), result.stdout


def test_v2_wins_when_both_answer():
    if not (compose_answers("v1") and compose_answers("v2")):
        pytest.skip("needs both Compose v1 and v2")
    result = run_script("compose.sh", "dev", "version", "--short", env={"COMPOSE_CLI": ""})
    assert result.stdout.strip().startswith("2."), result.stdout


def test_an_unknown_compose_cli_is_named():
    result = run_script("compose.sh", "dev", "version", env={"COMPOSE_CLI": "v3"})
    assert result.returncode == 1
    assert "COMPOSE_CLI must be v1, v2 or auto, not 'v3'" in result.stdout


def test_a_missing_compose_is_named():
    no_plugins = {"COMPOSE_CLI": "v2", "DOCKER_CONFIG": "/nonexistent"}  # hides a DOCKER_CONFIG plugin
    result = run_script("compose.sh", "dev", "version", env=no_plugins)
    if result.returncode == 0:
        pytest.skip("Compose v2 is installed system-wide")
    assert result.returncode == 1
    assert "COMPOSE_CLI=v2 but 'docker compose' does not answer" in result.stdout


def test_install_compose_v2_rejects_unknown_arguments():
    result = run_script("install-compose-v2.sh", "--global")
    assert result.returncode == 2
    assert "unknown argument '--global'" in result.stdout and "--config-dir DIR" in result.stdout
