"""The act helper's workflow surgery: a job made to run alone loses its `needs` and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mnist_testkit.act import without_needs

DEPLOY = Path(__file__).resolve().parents[3] / ".github" / "workflows" / "deploy.yml"

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
