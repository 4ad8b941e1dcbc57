"""The GitHub workflows: linted (actionlint, zizmor), pinned, and pointing only at things that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
MAKE_TARGETS = set(re.findall(r"^([a-zA-Z][\w-]*):", (REPO_ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def load(path: Path) -> dict:
    # YAML 1.1 reads the key `on` as True; give it back its name.
    document = yaml.safe_load(path.read_text())
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(document: dict):
    for job_name, job in document["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def test_the_workflows_exist():
    names = [path.name for path in WORKFLOWS]
    assert names == ["backend.yml", "deploy.yml", "frontend.yml", "image.yml", "training.yml"]


def test_backend_and_frontend_build_their_images_through_the_one_reusable_workflow():
    for component, sibling in (("backend", "frontend"), ("frontend", "backend")):
        job = load(REPO_ROOT / ".github" / "workflows" / f"{component}.yml")["jobs"]["image"]
        assert job["uses"] == "$/.github/workflows/image.yml"
        assert job["with"] == {"component": component, "sibling": sibling}


# Both linters come from requirements-dev.txt (make install). shellcheck on actionlint's command
# line makes it check every `run:` script as well.
ACTIONLINT = Path(sys.executable).with_name("actionlint")
SHELLCHECK = Path(sys.executable).with_name("shellcheck")


def actionlint(*paths: Path, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    for tool in (ACTIONLINT, SHELLCHECK):
        assert tool.exists(), f"{tool.name} is missing: run make install (requirements-dev.txt)"
    command = [str(ACTIONLINT), "-no-color", "-shellcheck", str(SHELLCHECK), *map(str, paths)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def test_actionlint_passes():
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


BROKEN_WORKFLOW = """\
name: broken
on: [pull_request]
jobs:
  test:
    runs-on: ubuntu-latst
    needs: missing-job
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
      - run: cd $TARGET_DIR && ls
"""


def test_actionlint_reports_each_kind_of_mistake(tmp_path):
    """The linter above is only worth its green if it goes red: one workflow, four mistakes."""
    workflow = tmp_path / "broken.yml"
    workflow.write_text(BROKEN_WORKFLOW)
    result = actionlint(workflow, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    for expected in (
        'label "ubuntu-latst" is unknown',  # a runner that does not exist
        'needs job "missing-job" which does not exist',
        '"github.event.pull_request.title" is potentially untrusted',  # script injection
        "SC2086",  # shellcheck on the run: script
    ):
        assert expected in result.stdout, f"actionlint missed: {expected}\n{result.stdout}"


def test_zizmor_passes():
    zizmor = Path(sys.executable).with_name("zizmor")
    result = subprocess.run(
        [str(zizmor), "--offline", ".github/workflows"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_by_commit(path):
    for line in path.read_text().splitlines():
        match = re.search(r"uses: ([^\s#]+)", line)
        if not match or match.group(1).startswith(("./", "$/")):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match.group(1)), f"{path.name}: {line.strip()}"
        assert re.search(r"# v\d", line), f"{path.name}: say which version the SHA is: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_timeouts(path):
    document = load(path)
    assert document["permissions"] == {}, "the workflow grants nothing by default"
    for name, job in document["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} must say what it needs"
        if "uses" not in job:  # a job that calls a reusable workflow takes that workflow's timeouts
            assert job.get("timeout-minutes"), f"{path.name}: job {name} has no timeout"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_everything_the_workflows_reference_exists(path):
    document = load(path)
    for job_name, job in document["jobs"].items():
        local = re.match(r"(?:\./|\$/)(.+)", job.get("uses", ""))  # `$/` is the self-repository form
        if local:
            assert (REPO_ROOT / local.group(1)).is_file(), f"{path.name}: {job_name} uses {job['uses']}"
    for job_name, step in steps(document):
        command = step.get("run", "")
        for target in re.findall(r"\bmake ([a-z][\w-]*)", command):
            assert target in MAKE_TARGETS, f"{path.name}/{job_name}: make {target} is not a Makefile target"
        for script in re.findall(r"\b(scripts/[\w./-]+)", command):
            assert (REPO_ROOT / script).is_file(), f"{path.name}/{job_name}: {script} does not exist"
            assert (REPO_ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
    for event in ("push", "pull_request"):
        for pattern in (document["on"].get(event) or {}).get("paths", []):
            fixed = pattern.split("*")[0].rstrip("/")
            assert (REPO_ROOT / fixed).exists(), f"{path.name}: the path filter {pattern} matches nothing"


def test_deploy_takes_environment_tag_and_force_by_hand_and_from_other_workflows():
    on = load(REPO_ROOT / ".github" / "workflows" / "deploy.yml")["on"]
    dispatch = on["workflow_dispatch"]["inputs"]
    assert dispatch["environment"]["options"] == ["dev", "staging", "production"]
    assert {"tag", "force"} <= dispatch.keys() and {"environment", "tag", "force"} <= on["workflow_call"][
        "inputs"
    ].keys()
    jobs = load(REPO_ROOT / ".github" / "workflows" / "deploy.yml")["jobs"]
    assert set(jobs) == {"inputs", "integration", "security", "deploy", "notify"}
    assert jobs["notify"]["if"] == "always()" and "environment" in jobs["deploy"]
    # The deploy tool checks the inputs before anything is built (test_workflows_under_act.py runs it).
    assert jobs["integration"]["needs"] == jobs["security"]["needs"] == "inputs"
    assert "--check-arguments" in jobs["inputs"]["steps"][-1]["run"]
