"""Golden tests of what each step runs (argv, variables, timeout), as Kamal tests its commands:
a changed flag shows up here, not first on a production host."""

from __future__ import annotations

from pathlib import Path

import pytest
from mnist_hub.commands import compose, docker, git, host
from mnist_hub.commands.kubectl import Kubectl
from mnist_hub.runner import Command, command

ROOT = Path("/srv/hub")
V2 = compose.ComposeProject(compose.V2, ROOT, "production", "mnist-production")
V1 = compose.ComposeProject(compose.V1, ROOT, "staging", "mnist-staging")
FILES = (
    "--project-directory",
    "/srv/hub",
    "-p",
    "mnist-production",
    "-f",
    "/srv/hub/docker-compose.yml",
    "-f",
    "/srv/hub/docker-compose.production.yml",
)


def test_compose_commands_name_the_environments_files_and_project():
    up = V2.up(
        ("backend", "frontend"),
        ("--no-deps", "--no-recreate", "--no-build", "--scale", "backend=6"),
        {"DEPLOY_POOL": "green", "IMAGE_TAG": "abc"},
        timeout=300,
    )
    assert up == Command(
        (
            "docker",
            "compose",
            *FILES,
            "up",
            "-d",
            "--no-deps",
            "--no-recreate",
            "--no-build",
            "--scale",
            "backend=6",
            "backend",
            "frontend",
        ),
        {"DEPLOY_POOL": "green", "IMAGE_TAG": "abc"},
        300,
        "show",
    )
    assert str(up).startswith("DEPLOY_POOL=green IMAGE_TAG=abc docker compose --project-directory /srv/hub")
    assert V1.argv("ps")[:2] == ("docker-compose", "--compatibility")


def test_the_registry_preflight_runs_the_sync_once_into_a_scratch_folder():
    cmd = V2.run_once("model-sync", ("python", "-m", "mnist_model_sync", "--once"), {"MODEL_DIR": "/tmp/preflight"}, {})
    assert cmd.argv[len(FILES) + 2 :] == (
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "-e",
        "MODEL_DIR=/tmp/preflight",
        "model-sync",
        "python",
        "-m",
        "mnist_model_sync",
        "--once",
    )
    assert cmd.output == "capture-all"


def test_v2_lists_its_active_services_and_v1_is_filtered_by_profile():
    assert V2.services({}).argv[-2:] == ("config", "--services")
    assert V1.services({}).argv[-1] == "config"
    v1_config = """services:
  backend:
    image: hub/backend
    profiles:
    - never
  model-sync:
    environment:
      A: b
    profiles:
    - registry
  nginx:
    image: nginx
volumes:
  models: {}
"""
    assert compose.active_services(V1, v1_config, "registry") == ["model-sync", "nginx"]
    assert compose.active_services(V1, v1_config, "") == ["nginx"]
    assert compose.active_services(V2, "backend\nnginx\n", "") == ["backend", "nginx"]


def test_docker_commands():
    assert docker.project_containers("mnist-staging", "prometheus").argv == (
        "docker",
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        "label=com.docker.compose.project=mnist-staging",
        "--filter",
        "label=com.docker.compose.service=prometheus",
    )
    assert docker.stop(["a", "b"]).argv == ("docker", "stop", "-t", "30", "a", "b")
    assert docker.signal_reload("abc").argv == ("docker", "exec", "abc", "sh", "-c", "kill -HUP 1")
    assert docker.metrics("abc", 9090).argv[-1] == "http://127.0.0.1:9090/metrics"
    assert docker.pull("r/backend:t") == command("docker", "pull", "--quiet", "r/backend:t", output="quiet")


def test_git_and_host_commands():
    assert git.checkout_detached("a" * 40).argv == ("git", "checkout", "--quiet", "--detach", "a" * 40)
    assert host.set_current_model(ROOT, "/m", "v1") == command(
        "python3",
        "-m",
        "mnist_contract.model_store",
        "set-current",
        "/m",
        "v1",
        env={"PYTHONPATH": "/srv/hub/contract/src"},
    )
    assert host.notify("success", "staging", "t", 12, "ok").argv == (
        "scripts/notify-slack.sh",
        "--status",
        "success",
        "--environment",
        "staging",
        "--tag",
        "t",
        "--duration",
        "12",
        "--detail",
        "ok",
    )


@pytest.mark.parametrize("context", ["", "kind-hub"])
def test_kubectl_commands(context):
    kc = Kubectl("/opt/kubectl", context)
    prefix = ("/opt/kubectl", *(("--context", context) if context else ()))
    assert kc.rollout_undo("mnist-ci", "backend", "3").argv == (
        *prefix,
        "-n",
        "mnist-ci",
        "rollout",
        "undo",
        "deployment/backend",
        "--to-revision=3",
    )
    assert kc.apply("/w/r.yaml", dry_run=True).argv == (*prefix, "apply", "--dry-run=server", "-f", "/w/r.yaml")
    assert kc.port_forward("mnist-ci", "svc/backend", 41000, 8000).argv == (
        *prefix,
        "-n",
        "mnist-ci",
        "port-forward",
        "--address",
        "127.0.0.1",
        "svc/backend",
        "41000:8000",
    )
    assert kc.rollout_status("mnist-ci", "frontend", 90).argv[-1] == "--timeout=90s"
